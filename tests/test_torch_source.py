"""The generated PyTorch source (`netlang compile FILE --backend torch -o model.py`): a standalone
file that imports only torch, one class per block definition, and the same function as the
in-memory module: loaded with its state_dict it gives the same outputs, in eval and in training."""
import ast
import importlib.util
import re
from pathlib import Path

import pytest

import netlang
from backends._graph import MODULE_ATTRIBUTES
from backends.torch_source import generate_source
from netlang.cli import main
from netlang.errors import NetlangNameError

torch = pytest.importorskip("torch")
from backends.pytorch import lower  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    yield


def import_source(text: str, tmp_path: Path, name: str = "generated_model"):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def network_class(mod):
    classes = [v for v in vars(mod).values()
               if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__]
    return classes[-1]


# Networks that between them use every construct the generator emits: module arguments for
# children that differ between calls (resnet's downsample), auxiliary outputs (googlenet),
# recursion and dropping joins (fractalnet), cropped concatenation (unet_tiny), drop_path
# (stochastic depth), scaled residuals (Inception-ResNet), dense concatenation, LRN and grouped
# convolutions (AlexNet as published), ceil-mode pools and nested sequences (squeezenet), deep
# recursion (ResNeXt's Figure 3(a) as 32 nested adds).
CASES = [
    ("resnet.net", "resnet18", (3, 32, 32)),
    ("googlenet.net", "googlenet", (3, 224, 224)),
    ("fractalnet.net", "fractalnet20", (3, 32, 32)),
    ("unet_tiny.net", "unet_tiny", (1, 64, 64)),
    ("resnet_cifar.net", "resnet110_stochastic_depth", None),
    ("inception_resnet_v2.net", "inception_resnet_v2", (3, 75, 75)),
    ("densenet.net", "densenet121", (3, 32, 32)),
    ("alexnet.net", "alexnet_paper", (3, 75, 75)),
    ("squeezenet.net", "squeezenet1_1", (3, 64, 64)),
    # A block calling itself 31 deep, each call a class instance built by its caller (rendering
    # it once was exponential in the depth).
    ("resnext.net", "resnext_form_a", (256, 4, 4)),
]


def both(file, network, input, tmp_path):
    net = netlang.load(ARCH / file, network=network, input=input)
    text = generate_source(net.graph)
    mod = import_source(text, tmp_path)
    torch.manual_seed(0)
    ours = lower(net.graph)
    torch.manual_seed(0)
    theirs = network_class(mod)()
    return net, text, ours, theirs


@pytest.mark.parametrize("file,network,input", CASES, ids=[c[1] for c in CASES])
def test_generated_module_computes_what_the_in_memory_one_does(file, network, input, tmp_path):
    net, text, ours, theirs = both(file, network, input, tmp_path)
    # Same state_dict: keys, shapes, order.
    assert [(k, v.shape) for k, v in theirs.state_dict().items()] == \
           [(k, v.shape) for k, v in ours.state_dict().items()]
    theirs.load_state_dict(ours.state_dict(), strict=True)
    shape = net.graph.nodes["input"]["shape"]
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
    # Training: dropout, drop_path, dropping joins and auxiliary heads draw the same random
    # numbers in the same order, and batchnorm statistics move the same way.
    ours.train(), theirs.train()
    torch.manual_seed(2)
    a = ours(x)
    torch.manual_seed(2)
    b = theirs(x)
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    assert len(a) == len(b) == len(net.graph.graph["outputs"])
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(torch.equal(p, q) for p, q in zip(ours.state_dict().values(), theirs.state_dict().values()))


def imports_of(text: str) -> set:
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return found


@pytest.mark.parametrize("file,network,input", CASES, ids=[c[1] for c in CASES])
def test_the_file_stands_alone(file, network, input):
    text = generate_source(netlang.load(ARCH / file, network=network, input=input).graph)
    assert imports_of(text) <= {"torch", "torch.nn", "torch.nn.functional"}
    names = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
    assert "netlang" not in names and "backends" not in names


def classes_of(text: str) -> dict:
    """class name -> its `# block NAME:` comment's block name (or None)."""
    out = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("class "):
            name = line[6:].partition("(")[0]
            note = lines[i + 1].strip()
            out[name] = note.split()[2].rstrip(":") if note.startswith("# block ") else None
    return out


def test_one_class_per_block_definition_reused_for_every_call():
    text = generate_source(netlang.load(ARCH / "resnet.net", network="resnet50").graph)
    classes = classes_of(text)
    assert classes == {"Bottleneck": "bottleneck", "Resnet50": None}
    # All 16 calls construct that one class; the four that change the shape are given their
    # projection, the others the identity, as torchvision's Bottleneck takes `downsample`.
    assert len(re.findall(r"^\s+Bottleneck\(\d", text, re.M)) == 16
    assert text.count("downsample=nn.Sequential(") == 4 and text.count("downsample=nn.Identity()") == 12
    # Arguments that follow the block's parameters are written with them.
    assert "def __init__(self, in_channels, width, downsample, stride=1):" in text
    # A parameter the .net calls leave out takes the block's default in the class, and the
    # calls that use the default leave it out too.
    assert "Bottleneck(256, 128, stride=2, downsample=nn.Sequential(" in text
    assert "Bottleneck(512, 128, downsample=nn.Identity())" in text
    assert "self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)" in text
    assert "self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)" in text

    text = generate_source(netlang.load(ARCH / "googlenet.net", network="googlenet_torchvision").graph)
    classes = classes_of(text)
    assert sorted(b for b in classes.values() if b) == ["aux_head", "basic_conv", "inception"]
    assert len(re.findall(r"= Inception\(\d", text)) == 9
    assert "self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)" in text
    assert "def __init__(self, in_channels, c, k, stride=1, pad=0):" in text
    assert "BasicConv(c3r, c3, 3, pad=1)" in text and "self.conv1 = BasicConv(3, 64, 7, stride=2, pad=3)" in text


def test_forward_reads_like_hand_written_code():
    text = generate_source(netlang.load(ARCH / "resnet.net", network="resnet18").graph)
    forward = text.split("class Resnet18")[1].split("def forward(self, x):")[1]
    assert forward.split() == """x = self.conv1(x) x = self.bn1(x) x = F.relu(x, inplace=True) x = self.maxpool(x)
        x = self.layer1(x) x = self.layer2(x) x = self.layer3(x) x = self.layer4(x) x = self.avgpool(x)
        x = torch.flatten(x, 1) x = self.fc(x) return x""".split()
    block = text.split("class BasicBlock")[1].split("def forward(self, x):")[1].split("class ")[0]
    assert "downsample = self.downsample(x)" in block and ".add_(downsample)" in block
    assert "getattr" not in text


def test_auxiliary_outputs_only_in_training(tmp_path):
    net, text, ours, theirs = both("googlenet.net", "googlenet", None, tmp_path)
    assert "if not self.training:\n            return" in text
    x = torch.randn(1, 3, 224, 224)
    theirs.eval()
    assert isinstance(theirs(x), torch.Tensor)
    theirs.train()
    assert len(theirs(x)) == 3


def test_hostile_names_cannot_inject_code(tmp_path):
    # Python keywords as labels, and a file name and string with quotes and line breaks: they
    # reach the source only through repr() and comments made safe.
    src = """
network evil(mode="nearest") {
    input 3x8x8
    class: conv(4, 3, pad=1)
    lambda: relu
    import: upsample(2, mode=mode)
    return: conv(2, 1)
}
"""
    net = netlang.loads(src, filename='x"""\nimport os; os.system("echo pwned")\n#.net')
    text = generate_source(net.graph)
    tree = ast.parse(text)
    assert imports_of(text) <= {"torch", "torch.nn", "torch.nn.functional"}
    assert not any(isinstance(n, ast.Attribute) and n.attr == "system" for n in ast.walk(tree))
    assert "add_module('class'" in text and "getattr(self, 'return')" in text
    mod = import_source(text, tmp_path, "evil_model")
    model = network_class(mod)()
    assert [k for k in model.state_dict()] == ["class.weight", "class.bias", "return.weight", "return.bias"]
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 2, 16, 16)


@pytest.mark.parametrize("label", ["forward", "training", "eval", "state_dict", "_modules"])
def test_labels_that_nn_module_owns_are_a_located_error(label):
    net = netlang.loads(f"network n {{\n    input 3x8x8\n    {label}: conv(4, 1)\n}}\n", filename="n.net")
    for make in (generate_source, lower):
        with pytest.raises(NetlangNameError) as err:
            make(net.graph)
        assert err.value.loc.line == 3 and label in str(err.value)


def test_the_list_of_module_attributes_covers_the_installed_torch():
    # Names starting with "__" are refused by rule (torch._dynamo patches such names onto
    # nn.Module at run time); every other attribute is listed.
    assert {a for a in dir(torch.nn.Module()) if not a.startswith("__")} <= MODULE_ATTRIBUTES


def test_cli_writes_the_file_with_a_header(tmp_path, capsys):
    out = tmp_path / "model.py"
    assert main(["compile", str(ARCH / "resnet.net"), "--network", "resnet18", "-p", "classes=10",
                 "--backend", "torch", "-o", str(out)]) == 0
    text = out.read_text()
    head = text.splitlines()[:4]
    assert "resnet.net" in head[0] and "resnet18" in head[0] and "3x224x224" in head[0]
    assert "classes=10" in head[1] and "layers=[2, 2, 2, 2]" in head[1]
    assert "-p classes=10" in head[2]
    model = network_class(import_source(text, tmp_path, "cli_model"))()
    assert model.fc.out_features == 10
    assert "class Resnet18" in capsys.readouterr().err
    # Without -o the source goes to stdout.
    assert main(["compile", str(ARCH / "lenet.net")]) == 0
    assert "class Lenet5(nn.Module):" in capsys.readouterr().out


def test_cli_error_is_located(tmp_path, capsys):
    bad = tmp_path / "bad.net"
    bad.write_text("network n {\n    input 3x8x8\n    forward: conv(4, 1)\n}\n")
    assert main(["compile", str(bad), "-o", str(tmp_path / "m.py")]) == 1
    err = capsys.readouterr().err
    assert "bad.net:3:14" in err and "^" in err
    assert not (tmp_path / "m.py").exists()


@pytest.mark.parametrize("network,input", [("resnet18", (3, 32, 32)), ("googlenet", (3, 224, 224))])
def test_generated_module_compiles_without_graph_breaks(network, input, tmp_path):
    file = "googlenet.net" if network == "googlenet" else "resnet.net"
    net, text, ours, theirs = both(file, network, input, tmp_path)
    theirs.train()
    compiled = torch.compile(theirs, backend="eager", fullgraph=True)
    x = torch.randn(2, *net.graph.nodes["input"]["shape"])
    torch.manual_seed(3)
    out = compiled(x)
    torch.manual_seed(3)
    ref = theirs(x)
    out, ref = (out if isinstance(out, tuple) else (out,)), (ref if isinstance(ref, tuple) else (ref,))
    assert len(out) == len(ref) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(out, ref))


def test_generated_module_is_initialised_reproducibly_as_torchvision_does(tmp_path):
    net = netlang.load(ARCH / "resnet.net", network="resnet18", classes=10)
    cls = network_class(import_source(generate_source(net.graph), tmp_path, "init_model"))
    torch.manual_seed(5)
    a = cls()
    torch.manual_seed(5)
    b = cls()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (out_channels * k * k)).
    w = a.layer4[1].conv2.weight
    assert abs(w.std().item() / (2 / (512 * 9)) ** 0.5 - 1) < 0.01
    assert torch.equal(a.bn1.weight, torch.ones(64)) and torch.equal(a.bn1.bias, torch.zeros(64))
    bound = 1 / 512 ** 0.5           # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert a.fc.weight.abs().max() <= bound and a.fc.weight.abs().max() > 0.9 * bound


def test_in_memory_build_initialises_every_tensor_once():
    # Convolutions skip PyTorch's default initialisation: nothing may be left uninitialised, and
    # every layer is the plain PyTorch class.
    torch.manual_seed(0)
    a = netlang.compile(ARCH / "googlenet.net", network="googlenet_torchvision")
    torch.manual_seed(0)
    b = netlang.compile(ARCH / "googlenet.net", network="googlenet_torchvision")
    assert {type(m).__module__.split(".")[0] for m in a.modules()} <= {"torch", "backends"}
    assert type(a.conv1.conv) is torch.nn.Conv2d
    for (key, t), u in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(t, u), key
        assert t.device.type == "cpu"
        if key.endswith("running_mean"):
            assert torch.equal(t, torch.zeros_like(t))
        elif key.endswith("running_var"):
            assert torch.equal(t, torch.ones_like(t))
        elif key.endswith("num_batches_tracked"):
            assert t.item() == 0
        elif key.endswith("bias") and ".bn" not in key and "bn." not in key:
            fan_in = a.get_parameter(key[:-4] + "weight").shape[1]
            assert t.abs().max() <= 1 / fan_in ** 0.5       # linear biases: PyTorch's default
        else:
            assert torch.isfinite(t).all() and t.abs().max() < 10


def test_scopes_slice_like_nn_sequential():
    model = netlang.compile(ARCH / "vgg.net", network="vgg16", input=(3, 32, 32)).eval()
    head = model.features[:5]
    assert isinstance(head, torch.nn.Sequential) and list(head._modules) == ["0", "1", "2", "3", "4"]
    assert head[0] is model.features[0]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = x
        for i in range(5):
            y = model.features[i](y)
        assert torch.equal(head(x), y)
    assert list(model.features[-3:]._modules) == ["28", "29", "30"]
