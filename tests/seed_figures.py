"""Figures printed in the lecture-note seeds, next to values computed from first principles.

Plain data for tests: no test functions, standard library only, nothing imported at all.
Every exact value below is written as Python integer arithmetic so that it can be audited
against the layer it describes.  The report that explains each figure and each discrepancy
is docs/seed-figures.md.

Seeds (the lecture notes netlang was created from):
    000  CS231n-style "CNN Architectures" slides (AlexNet, VGG16 table, Inception op counts)
    001  Lazebnik, "from LeNet to ResNet" (VGG A-E, GoogLeNet table, ResNet table)
    002  CS231n lecture 9 notes (AlexNet conv1 "35K", 3x3x3 vs 7x7)
    004  Konstantinov, "Modern ConvNet architectures" (VGG table, All-CNN)

Counting conventions used for every computed value in this module:
    * MAC (multiply-accumulate) = one multiply plus one add, counted once.
      A conv layer costs H_out * W_out * K_h * K_w * C_in * C_out MACs; a fully connected
      layer costs C_in * C_out.  Pooling, ReLU, LRN, BN, dropout, residual additions and
      softmax cost 0.  The seeds' "ops" (Inception, GoogLeNet) and ResNet's "FLOPs" are MACs.
    * params_weights = weights only (the convention the seeds' tables use);
      params_with_bias additionally counts one bias per output channel / unit.
    * "K" and "M" in a printed figure: decimal (10**3, 10**6) unless stated; the GoogLeNet
      table's params column uses K = 1024 (see GOOGLENET_K).
    * Verdict strings:
        "match"             the exact value rounded half-up at the printed precision equals
                            the printed figure;
        "match (truncated)" only truncation at the printed precision gives the printed figure;
        "mismatch"          neither does.
"""

# ---------------------------------------------------------------------------------------
# Verdict vocabulary
# ---------------------------------------------------------------------------------------
MATCH = "match"
MATCH_TRUNCATED = "match (truncated)"
MISMATCH = "mismatch"

# ---------------------------------------------------------------------------------------
# Inception modules (seed 000): 28x28x256 input, every branch stride 1, "same" padding.
# ---------------------------------------------------------------------------------------
NAIVE_INCEPTION = {
    "seed": "000",
    "input_shape": (28, 28, 256),
    "branches": [
        {"name": "1x1 conv, 128", "printed_term": "28x28x128x1x1x256",
         "kernel": 1, "pad": 0, "in_channels": 256, "out_channels": 128,
         "macs": 28*28*128*1*1*256, "params_weights": 1*1*256*128},
        {"name": "3x3 conv, 192", "printed_term": "28x28x192x3x3x256",
         "kernel": 3, "pad": 1, "in_channels": 256, "out_channels": 192,
         "macs": 28*28*192*3*3*256, "params_weights": 3*3*256*192},
        {"name": "5x5 conv, 96", "printed_term": "28x28x96x5x5x256",
         "kernel": 5, "pad": 2, "in_channels": 256, "out_channels": 96,
         "macs": 28*28*96*5*5*256, "params_weights": 5*5*256*96},
        {"name": "3x3 max pool, stride 1, pad 1", "printed_term": None,
         "kernel": 3, "pad": 1, "in_channels": 256, "out_channels": 256,
         "macs": 0, "params_weights": 0},
    ],
    "printed_total_text": "854M ops",
    "printed_total": 854 * 10**6,
    # sum of the seed's own printed terms (the pool branch is not printed and costs 0)
    "printed_terms_sum": 28*28*128*1*1*256 + 28*28*192*3*3*256 + 28*28*96*5*5*256,
    "computed_total": 28*28*128*1*1*256 + 28*28*192*3*3*256 + 28*28*96*5*5*256,  # 854,196,224
    "computed_total_flops_2x": 2 * (28*28*128*1*1*256 + 28*28*192*3*3*256 + 28*28*96*5*5*256),
    "output_shape": (28, 28, 128 + 192 + 96 + 256),
    "output_depth": 128 + 192 + 96 + 256,  # 672
    "output_depth_printed_in_seed_text": False,  # 672 is in the slide image, not the text
    "verdict": MATCH,
}

BOTTLENECK_INCEPTION = {
    "seed": "000",
    "input_shape": (28, 28, 256),
    # in the order the seed prints them
    "branches": [
        {"name": "1x1 conv, 64 (reduce before 3x3)", "printed_term": "28x28x64x1x1x256",
         "kernel": 1, "in_channels": 256, "out_channels": 64,
         "macs": 28*28*64*1*1*256, "params_weights": 256*64},
        {"name": "1x1 conv, 64 (reduce before 5x5)", "printed_term": "28x28x64x1x1x256",
         "kernel": 1, "in_channels": 256, "out_channels": 64,
         "macs": 28*28*64*1*1*256, "params_weights": 256*64},
        {"name": "1x1 conv, 128", "printed_term": "28x28x128x1x1x256",
         "kernel": 1, "in_channels": 256, "out_channels": 128,
         "macs": 28*28*128*1*1*256, "params_weights": 256*128},
        {"name": "3x3 conv, 192", "printed_term": "28x28x192x3x3x64",
         "kernel": 3, "in_channels": 64, "out_channels": 192,
         "macs": 28*28*192*3*3*64, "params_weights": 3*3*64*192},
        {"name": "5x5 conv, 96", "printed_term": "28x28x96x5x5x64",
         "kernel": 5, "in_channels": 64, "out_channels": 96,
         "macs": 28*28*96*5*5*64, "params_weights": 5*5*64*96},
        {"name": "1x1 conv, 64 (after 3x3 max pool)", "printed_term": "28x28x64x1x1x256",
         "kernel": 1, "in_channels": 256, "out_channels": 64,
         "macs": 28*28*64*1*1*256, "params_weights": 256*64},
    ],
    "printed_total_text": "358M ops",
    "printed_total": 358 * 10**6,
    "printed_terms_sum": (28*28*64*1*1*256 + 28*28*64*1*1*256 + 28*28*128*1*1*256
                          + 28*28*192*3*3*64 + 28*28*96*5*5*64 + 28*28*64*1*1*256),
    "computed_total": (28*28*64*1*1*256 + 28*28*64*1*1*256 + 28*28*128*1*1*256
                       + 28*28*192*3*3*64 + 28*28*96*5*5*64 + 28*28*64*1*1*256),  # 271,351,808
    # The only way to reach 358M from the printed terms (each used 0..2 times) is to count
    # the 3x3 term twice: 271,351,808 + 86,704,128 = 358,055,936.  Inference, not proven.
    "total_if_3x3_term_counted_twice": (28*28*64*1*1*256 + 28*28*64*1*1*256
                                        + 28*28*128*1*1*256 + 2 * 28*28*192*3*3*64
                                        + 28*28*96*5*5*64 + 28*28*64*1*1*256),
    "naive_over_bottleneck": (28*28*128*1*1*256 + 28*28*192*3*3*256 + 28*28*96*5*5*256)
                             / (28*28*64*1*1*256 * 3 + 28*28*128*1*1*256
                                + 28*28*192*3*3*64 + 28*28*96*5*5*64),
    "output_shape": (28, 28, 128 + 192 + 96 + 64),
    "output_depth": 128 + 192 + 96 + 64,  # 480
    "verdict": MISMATCH,
    "cause": "printed total is not the sum of its own printed terms (271.35M); it equals the "
             "sum with the 3x3 term added twice (358.06M) -- the likely slip, not provable",
}

# ---------------------------------------------------------------------------------------
# VGG16 memory / params table (seed 000; seed 002 quotes the 96MB).  224x224x3 input,
# 3x3 conv stride 1 pad 1, 2x2 max pool stride 2.  Rows from the second (complete) copy
# of the table in seed 000; the first copy lost the second CONV3-64 row in extraction.
# "memory" = number of activation values in the layer's output.
# ---------------------------------------------------------------------------------------
VGG16_ROWS = [
    {"name": "INPUT", "common_name": "input", "shape": (224, 224, 3),
     "printed_memory_text": "150K", "printed_memory": 150_000, "memory": 224*224*3,
     "printed_params": 0, "params_weights": 0, "params_with_bias": 0},
    {"name": "CONV3-64", "common_name": "conv1-1", "shape": (224, 224, 64),
     "printed_memory_text": "3.2M", "printed_memory": 3_200_000, "memory": 224*224*64,
     "printed_params": 1_728, "params_weights": 3*3*3*64, "params_with_bias": 3*3*3*64 + 64},
    {"name": "CONV3-64", "common_name": "conv1-2", "shape": (224, 224, 64),
     "printed_memory_text": "3.2M", "printed_memory": 3_200_000, "memory": 224*224*64,
     "printed_params": 36_864, "params_weights": 3*3*64*64, "params_with_bias": 3*3*64*64 + 64},
    {"name": "POOL2", "common_name": "pool1", "shape": (112, 112, 64),
     "printed_memory_text": "800K", "printed_memory": 800_000, "memory": 112*112*64,
     "printed_params": 0, "params_weights": 0, "params_with_bias": 0},
    {"name": "CONV3-128", "common_name": "conv2-1", "shape": (112, 112, 128),
     "printed_memory_text": "1.6M", "printed_memory": 1_600_000, "memory": 112*112*128,
     "printed_params": 73_728, "params_weights": 3*3*64*128,
     "params_with_bias": 3*3*64*128 + 128},
    {"name": "CONV3-128", "common_name": "conv2-2", "shape": (112, 112, 128),
     "printed_memory_text": "1.6M", "printed_memory": 1_600_000, "memory": 112*112*128,
     "printed_params": 147_456, "params_weights": 3*3*128*128,
     "params_with_bias": 3*3*128*128 + 128},
    {"name": "POOL2", "common_name": "pool2", "shape": (56, 56, 128),
     "printed_memory_text": "400K", "printed_memory": 400_000, "memory": 56*56*128,
     "printed_params": 0, "params_weights": 0, "params_with_bias": 0},
    {"name": "CONV3-256", "common_name": "conv3-1", "shape": (56, 56, 256),
     "printed_memory_text": "800K", "printed_memory": 800_000, "memory": 56*56*256,
     "printed_params": 294_912, "params_weights": 3*3*128*256,
     "params_with_bias": 3*3*128*256 + 256},
    {"name": "CONV3-256", "common_name": "conv3-2", "shape": (56, 56, 256),
     "printed_memory_text": "800K", "printed_memory": 800_000, "memory": 56*56*256,
     "printed_params": 589_824, "params_weights": 3*3*256*256,
     "params_with_bias": 3*3*256*256 + 256},
    {"name": "CONV3-256", "common_name": "conv3-3", "shape": (56, 56, 256),
     "printed_memory_text": "800K", "printed_memory": 800_000, "memory": 56*56*256,
     "printed_params": 589_824, "params_weights": 3*3*256*256,
     "params_with_bias": 3*3*256*256 + 256},
    {"name": "POOL2", "common_name": "pool3", "shape": (28, 28, 256),
     "printed_memory_text": "200K", "printed_memory": 200_000, "memory": 28*28*256,
     "printed_params": 0, "params_weights": 0, "params_with_bias": 0},
    {"name": "CONV3-512", "common_name": "conv4-1", "shape": (28, 28, 512),
     "printed_memory_text": "400K", "printed_memory": 400_000, "memory": 28*28*512,
     "printed_params": 1_179_648, "params_weights": 3*3*256*512,
     "params_with_bias": 3*3*256*512 + 512},
    {"name": "CONV3-512", "common_name": "conv4-2", "shape": (28, 28, 512),
     "printed_memory_text": "400K", "printed_memory": 400_000, "memory": 28*28*512,
     "printed_params": 2_359_296, "params_weights": 3*3*512*512,
     "params_with_bias": 3*3*512*512 + 512},
    {"name": "CONV3-512", "common_name": "conv4-3", "shape": (28, 28, 512),
     "printed_memory_text": "400K", "printed_memory": 400_000, "memory": 28*28*512,
     "printed_params": 2_359_296, "params_weights": 3*3*512*512,
     "params_with_bias": 3*3*512*512 + 512},
    {"name": "POOL2", "common_name": "pool4", "shape": (14, 14, 512),
     "printed_memory_text": "100K", "printed_memory": 100_000, "memory": 14*14*512,
     "printed_params": 0, "params_weights": 0, "params_with_bias": 0},
    {"name": "CONV3-512", "common_name": "conv5-1", "shape": (14, 14, 512),
     "printed_memory_text": "100K", "printed_memory": 100_000, "memory": 14*14*512,
     "printed_params": 2_359_296, "params_weights": 3*3*512*512,
     "params_with_bias": 3*3*512*512 + 512},
    {"name": "CONV3-512", "common_name": "conv5-2", "shape": (14, 14, 512),
     "printed_memory_text": "100K", "printed_memory": 100_000, "memory": 14*14*512,
     "printed_params": 2_359_296, "params_weights": 3*3*512*512,
     "params_with_bias": 3*3*512*512 + 512},
    {"name": "CONV3-512", "common_name": "conv5-3", "shape": (14, 14, 512),
     "printed_memory_text": "100K", "printed_memory": 100_000, "memory": 14*14*512,
     "printed_params": 2_359_296, "params_weights": 3*3*512*512,
     "params_with_bias": 3*3*512*512 + 512},
    {"name": "POOL2", "common_name": "pool5", "shape": (7, 7, 512),
     "printed_memory_text": "25K", "printed_memory": 25_000, "memory": 7*7*512,
     "printed_params": 0, "params_weights": 0, "params_with_bias": 0},
    {"name": "FC", "common_name": "fc6", "shape": (1, 1, 4096),
     "printed_memory_text": "4096", "printed_memory": 4096, "memory": 4096,
     "printed_params": 102_760_448, "params_weights": 7*7*512*4096,
     "params_with_bias": 7*7*512*4096 + 4096},
    {"name": "FC", "common_name": "fc7", "shape": (1, 1, 4096),
     "printed_memory_text": "4096", "printed_memory": 4096, "memory": 4096,
     "printed_params": 16_777_216, "params_weights": 4096*4096,
     "params_with_bias": 4096*4096 + 4096},
    {"name": "FC", "common_name": "fc8", "shape": (1, 1, 1000),
     "printed_memory_text": "1000", "printed_memory": 1000, "memory": 1000,
     "printed_params": 4_096_000, "params_weights": 4096*1000,
     "params_with_bias": 4096*1000 + 1000},
]

VGG16_TOTALS = {
    "seed": "000 (table), 002 (96MB quote)",
    "printed_memory_text": "24M * 4 bytes ~= 96MB / image (only forward! ~*2 for bwd)",
    "printed_memory": 24 * 10**6,
    "printed_bytes": 96 * 10**6,
    "printed_bytes_check": 24 * 10**6 * 4,  # the 24M -> 96MB step itself is consistent
    "printed_params_text": "138M parameters",
    "printed_params": 138 * 10**6,
    # sums of the table's own printed rows
    "printed_memory_row_sum": sum(r["printed_memory"] for r in VGG16_ROWS),  # 15,184,192
    "printed_params_row_sum": sum(r["printed_params"] for r in VGG16_ROWS),  # 138,344,128
    # first copy of the table in seed 000 (conv1-2 row lost in extraction)
    "first_copy_printed_params_row_sum": (sum(r["printed_params"] for r in VGG16_ROWS)
                                          - 36_864),
    # exact
    "memory_including_input": sum(r["memory"] for r in VGG16_ROWS),  # 15,237,608
    "memory_excluding_input": sum(r["memory"] for r in VGG16_ROWS) - 224*224*3,  # 15,087,080
    "bytes_fp32_including_input": 4 * sum(r["memory"] for r in VGG16_ROWS),  # 60,950,432
    "params_weights": sum(r["params_weights"] for r in VGG16_ROWS),  # 138,344,128
    "params_with_bias": sum(r["params_with_bias"] for r in VGG16_ROWS),  # 138,357,544
    "conv_macs": (224*224*3*3*3*64 + 224*224*3*3*64*64
                  + 112*112*3*3*64*128 + 112*112*3*3*128*128
                  + 56*56*3*3*128*256 + 2*56*56*3*3*256*256
                  + 28*28*3*3*256*512 + 2*28*28*3*3*512*512
                  + 3*14*14*3*3*512*512),
    "fc_macs": 7*7*512*4096 + 4096*4096 + 4096*1000,
    "memory_verdict": MISMATCH,   # 24M vs 15.2M; follows neither the row sum nor the truth
    "params_verdict": MATCH,      # 138M: weights-only row sum and with-bias total both round to it
}

# ---------------------------------------------------------------------------------------
# GoogLeNet table (seed 001).  Printed params in K with K = 1024, ops in M = 10**6 (MACs).
# Exact params: weights only (the table's convention); also with biases.  Exact MACs at the
# row's output size.  Inception branch order: #1x1 | #3x3 reduce -> #3x3 |
# #5x5 reduce -> #5x5 | 3x3 max pool -> pool proj.
# ---------------------------------------------------------------------------------------
GOOGLENET_K = 1024
GOOGLENET_M = 10**6


def _inception_row(name, hw, c_in, n1, r3, n3, r5, n5, pp, printed_k, printed_m,
                   params_verdict, ops_verdict, note):
    weights = c_in*n1 + c_in*r3 + 3*3*r3*n3 + c_in*r5 + 5*5*r5*n5 + c_in*pp
    return {
        "name": "inception (%s)" % name, "type": "inception",
        "in_channels": c_in,
        "output_shape": (hw, hw, n1 + n3 + n5 + pp), "depth": 2,
        "inception": {"#1x1": n1, "#3x3 reduce": r3, "#3x3": n3,
                      "#5x5 reduce": r5, "#5x5": n5, "pool proj": pp},
        "printed_params_text": "%dK" % printed_k, "printed_params_k": printed_k,
        "printed_ops_text": "%dM" % printed_m, "printed_ops_m": printed_m,
        "params_weights": weights,
        "params_with_bias": weights + (n1 + r3 + n3 + r5 + n5 + pp),
        "params_k_exact": weights / GOOGLENET_K,
        "macs": hw*hw*weights,
        "ops_m_exact": hw*hw*weights / GOOGLENET_M,
        "params_verdict": params_verdict, "ops_verdict": ops_verdict,
        "verdict": MATCH if (params_verdict != MISMATCH and ops_verdict != MISMATCH)
        else MISMATCH,
        "note": note,
    }


GOOGLENET_ROWS = [
    {"name": "convolution 7x7/2", "type": "convolution", "in_channels": 3,
     "output_shape": (112, 112, 64), "depth": 1, "inception": None,
     "printed_params_text": "2.7K", "printed_params_k": 2.7,
     "printed_ops_text": "34M", "printed_ops_m": 34,
     "params_weights": 7*7*3*64,                          # 9,408 = 9.19K
     "params_with_bias": 7*7*3*64 + 64,
     "params_k_exact": 7*7*3*64 / 1024,
     "macs": 112*112*7*7*3*64,                            # 118,013,952
     "ops_m_exact": 112*112*7*7*3*64 / 10**6,
     "params_verdict": MISMATCH, "ops_verdict": MISMATCH, "verdict": MISMATCH,
     "note": "printed ops = printed params x 112*112 (2.7K*12544 = 34M), so the ops "
             "column follows the printed params; 2.7K itself matches no 7x7x3x64 reading"},
    {"name": "convolution 3x3/1", "type": "convolution", "in_channels": 64,
     "output_shape": (56, 56, 192), "depth": 2,
     "inception": {"#3x3 reduce": 64, "#3x3": 192},
     "printed_params_text": "112K", "printed_params_k": 112,
     "printed_ops_text": "360M", "printed_ops_m": 360,
     "params_weights": 1*1*64*64 + 3*3*64*192,            # 114,688 = 112.0K exactly
     "params_with_bias": 1*1*64*64 + 3*3*64*192 + 64 + 192,
     "params_k_exact": (1*1*64*64 + 3*3*64*192) / 1024,
     "macs": 56*56*(1*1*64*64 + 3*3*64*192),
     "ops_m_exact": 56*56*(1*1*64*64 + 3*3*64*192) / 10**6,
     "params_verdict": MATCH, "ops_verdict": MATCH, "verdict": MATCH,
     "note": "112K is exact only with K = 1024 (decimal would be 115K)"},
    _inception_row("3a", 28, 192, 64, 96, 128, 16, 32, 32, 159, 128,
                   MATCH_TRUNCATED, MATCH, "159.5K prints as 159 (truncated)"),
    _inception_row("3b", 28, 256, 128, 128, 192, 32, 96, 64, 380, 304,
                   MISMATCH, MATCH, "exact 379.0K, printed 380K"),
    _inception_row("4a", 14, 480, 192, 96, 208, 16, 48, 64, 364, 73,
                   MISMATCH, MATCH_TRUNCATED, "exact 366.75K, printed 364K; 73.6M prints as 73"),
    _inception_row("4b", 14, 512, 160, 112, 224, 24, 64, 64, 437, 88,
                   MISMATCH, MATCH, "exact 438.0K, printed 437K"),
    _inception_row("4c", 14, 512, 128, 128, 256, 24, 64, 64, 463, 100,
                   MISMATCH, MATCH, "exact 497.5K, printed 463K; ops column is right"),
    _inception_row("4d", 14, 512, 112, 144, 288, 32, 64, 64, 580, 119,
                   MISMATCH, MATCH, "exact 590.5K, printed 580K"),
    _inception_row("4e", 14, 528, 256, 160, 320, 32, 128, 128, 840, 170,
                   MISMATCH, MATCH, "exact 847.0K, printed 840K"),
    _inception_row("5a", 7, 832, 256, 160, 320, 32, 128, 128, 1072, 54,
                   MISMATCH, MISMATCH, "exact 1018.0K / 51.1M; printed ops 54M = printed "
                   "1072K x 1024 x 49 = 53.8M, i.e. ops follow the (wrong) printed params"),
    _inception_row("5b", 7, 832, 384, 192, 384, 48, 128, 128, 1388, 71,
                   MISMATCH, MATCH, "exact 1409.0K, printed 1388K"),
    {"name": "linear", "type": "linear", "in_channels": 1024,
     "output_shape": (1, 1, 1000), "depth": 1, "inception": None,
     "printed_params_text": "1000K", "printed_params_k": 1000,
     "printed_ops_text": "1M", "printed_ops_m": 1,
     "params_weights": 1024*1000,                         # 1,024,000 = 1000K exactly
     "params_with_bias": 1024*1000 + 1000,
     "params_k_exact": 1024*1000 / 1024,
     "macs": 1024*1000,
     "ops_m_exact": 1024*1000 / 10**6,
     "params_verdict": MATCH, "ops_verdict": MATCH, "verdict": MATCH,
     "note": "1000K is exact only with K = 1024 (decimal would be 1024K)"},
]
del _inception_row

# Max-pool rows: printed output sizes versus the two size conventions.
GOOGLENET_POOLS = [
    # (row, input hw, printed output hw, floor mode no pad, ceil mode no pad (= pad 1 floor))
    {"name": "max pool 3x3/2 after conv1", "in_hw": 112, "printed_hw": 56,
     "floor_no_pad": (112 - 3)//2 + 1, "ceil_no_pad": -(-(112 - 3)//2) + 1},
    {"name": "max pool 3x3/2 after conv2", "in_hw": 56, "printed_hw": 28,
     "floor_no_pad": (56 - 3)//2 + 1, "ceil_no_pad": -(-(56 - 3)//2) + 1},
    {"name": "max pool 3x3/2 after 3b", "in_hw": 28, "printed_hw": 14,
     "floor_no_pad": (28 - 3)//2 + 1, "ceil_no_pad": -(-(28 - 3)//2) + 1},
    {"name": "max pool 3x3/2 after 4e", "in_hw": 14, "printed_hw": 7,
     "floor_no_pad": (14 - 3)//2 + 1, "ceil_no_pad": -(-(14 - 3)//2) + 1},
    {"name": "avg pool 7x7/1", "in_hw": 7, "printed_hw": 1,
     "floor_no_pad": (7 - 7)//1 + 1, "ceil_no_pad": (7 - 7)//1 + 1},
]

GOOGLENET_TOTALS = {
    "seed": "001 (table), 000/002 ('only 5 million parameters', '12x less than AlexNet', "
            "'22 layers')",
    "printed_params_row_sum_k": 2.7 + 112 + 159 + 380 + 364 + 437 + 463 + 580 + 840
                                + 1072 + 1388 + 1000,               # 6797.7K
    "printed_ops_row_sum_m": 34 + 360 + 128 + 304 + 73 + 88 + 100 + 119 + 170 + 54 + 71 + 1,
    "params_weights": sum(r["params_weights"] for r in GOOGLENET_ROWS),      # 6,990,272
    "params_with_bias": sum(r["params_with_bias"] for r in GOOGLENET_ROWS),  # 6,998,552
    "macs": sum(r["macs"] for r in GOOGLENET_ROWS),                          # 1,582,671,872
    "printed_claim_params": 5 * 10**6,
    "printed_claim_ratio_vs_alexnet": 12,
    "depth_column_sum": sum(r["depth"] for r in GOOGLENET_ROWS),            # 22
    "printed_layers": 22,
    "params_claim_verdict": MISMATCH,   # table itself sums to ~7.0M
}

# ---------------------------------------------------------------------------------------
# VGG configurations A..E (seeds 001 and 004).  224x224x3 input, 3x3 convs pad 1 (1x1 convs
# in C pad 0), five 2x2/2 max pools -> 7x7x512, FC 4096, 4096, 1000.  Printed params in
# millions (10**6).  Layer specs: (kernel, out_channels) or "M" for max pool; LRN has no
# parameters.
# ---------------------------------------------------------------------------------------
_VGG_FC_WEIGHTS = 7*7*512*4096 + 4096*4096 + 4096*1000
_VGG_FC_BIASES = 4096 + 4096 + 1000

VGG_CONFIGS = {
    "A": {
        "weight_layers": 11,
        "layers": [(3, 64), "M", (3, 128), "M", (3, 256), (3, 256), "M",
                   (3, 512), (3, 512), "M", (3, 512), (3, 512), "M"],
        "printed_params_m": 133,
        "params_weights": (3*3*3*64 + 3*3*64*128 + 3*3*128*256 + 3*3*256*256
                           + 3*3*256*512 + 3*3*512*512 + 2*3*3*512*512 + _VGG_FC_WEIGHTS),
        "biases": 64 + 128 + 2*256 + 2*512 + 2*512 + _VGG_FC_BIASES,
    },
    "A-LRN": {
        "weight_layers": 11,
        "layers": [(3, 64), "LRN", "M", (3, 128), "M", (3, 256), (3, 256), "M",
                   (3, 512), (3, 512), "M", (3, 512), (3, 512), "M"],
        "printed_params_m": 133,
        "params_weights": (3*3*3*64 + 3*3*64*128 + 3*3*128*256 + 3*3*256*256
                           + 3*3*256*512 + 3*3*512*512 + 2*3*3*512*512 + _VGG_FC_WEIGHTS),
        "biases": 64 + 128 + 2*256 + 2*512 + 2*512 + _VGG_FC_BIASES,
    },
    "B": {
        "weight_layers": 13,
        "layers": [(3, 64), (3, 64), "M", (3, 128), (3, 128), "M", (3, 256), (3, 256), "M",
                   (3, 512), (3, 512), "M", (3, 512), (3, 512), "M"],
        "printed_params_m": 133,
        "params_weights": (3*3*3*64 + 3*3*64*64 + 3*3*64*128 + 3*3*128*128
                           + 3*3*128*256 + 3*3*256*256
                           + 3*3*256*512 + 3*3*512*512 + 2*3*3*512*512 + _VGG_FC_WEIGHTS),
        "biases": 2*64 + 2*128 + 2*256 + 2*512 + 2*512 + _VGG_FC_BIASES,
    },
    "C": {
        "weight_layers": 16,
        "layers": [(3, 64), (3, 64), "M", (3, 128), (3, 128), "M",
                   (3, 256), (3, 256), (1, 256), "M",
                   (3, 512), (3, 512), (1, 512), "M",
                   (3, 512), (3, 512), (1, 512), "M"],
        "printed_params_m": 134,
        "params_weights": (3*3*3*64 + 3*3*64*64 + 3*3*64*128 + 3*3*128*128
                           + 3*3*128*256 + 3*3*256*256 + 1*1*256*256
                           + 3*3*256*512 + 3*3*512*512 + 1*1*512*512
                           + 2*3*3*512*512 + 1*1*512*512 + _VGG_FC_WEIGHTS),
        "biases": 2*64 + 2*128 + 3*256 + 3*512 + 3*512 + _VGG_FC_BIASES,
    },
    "D": {
        "weight_layers": 16,
        "layers": [(3, 64), (3, 64), "M", (3, 128), (3, 128), "M",
                   (3, 256), (3, 256), (3, 256), "M",
                   (3, 512), (3, 512), (3, 512), "M",
                   (3, 512), (3, 512), (3, 512), "M"],
        "printed_params_m": 138,
        "params_weights": (3*3*3*64 + 3*3*64*64 + 3*3*64*128 + 3*3*128*128
                           + 3*3*128*256 + 2*3*3*256*256
                           + 3*3*256*512 + 2*3*3*512*512
                           + 3*3*3*512*512 + _VGG_FC_WEIGHTS),
        "biases": 2*64 + 2*128 + 3*256 + 3*512 + 3*512 + _VGG_FC_BIASES,
    },
    "E": {
        "weight_layers": 19,
        "layers": [(3, 64), (3, 64), "M", (3, 128), (3, 128), "M",
                   (3, 256), (3, 256), (3, 256), (3, 256), "M",
                   (3, 512), (3, 512), (3, 512), (3, 512), "M",
                   (3, 512), (3, 512), (3, 512), (3, 512), "M"],
        "printed_params_m": 144,
        "params_weights": (3*3*3*64 + 3*3*64*64 + 3*3*64*128 + 3*3*128*128
                           + 3*3*128*256 + 3*3*3*256*256
                           + 3*3*256*512 + 3*3*3*512*512
                           + 4*3*3*512*512 + _VGG_FC_WEIGHTS),
        "biases": 2*64 + 2*128 + 4*256 + 4*512 + 4*512 + _VGG_FC_BIASES,
    },
}
for _cfg in VGG_CONFIGS.values():
    _cfg["params_with_bias"] = _cfg["params_weights"] + _cfg["biases"]
    _cfg["verdict"] = MATCH  # all six round to the printed millions, with or without biases
del _cfg, _VGG_FC_WEIGHTS, _VGG_FC_BIASES
# exact with biases: A 132,863,336  B 133,047,848  C 133,638,952  D 138,357,544
#                    E 143,667,240

# ---------------------------------------------------------------------------------------
# Factorisation (seeds 001, 002, 004): three stacked 3x3 convs C->C vs one 7x7 C->C.
# Coefficients of C**2 (weights only); biases are 3C vs C.
# ---------------------------------------------------------------------------------------
FACTORISATION = {
    "printed_three_3x3_coeff": 27,        # "27C^2" (seed 001), "3 x 3^2 x C^2" (seed 002)
    "printed_one_7x7_coeff": 49,          # "49C^2", "7^2 x C^2"
    "three_3x3_coeff": 3 * 3*3,
    "one_7x7_coeff": 7*7,
    "three_3x3_biases_per_C": 3,
    "one_7x7_biases_per_C": 1,
    "receptive_field_three_3x3": 1 + 3*(3 - 1),   # 7, "effective receptive field of 7x7"
    "examples": {C: {"three_3x3": 3*3*3*C*C, "one_7x7": 7*7*C*C} for C in (64, 256, 512)},
    "verdict": MATCH,
}

# ---------------------------------------------------------------------------------------
# ResNet FLOPs (seed 001): exact MACs at 224x224, conv + fc weights only (no bias),
# BN/ReLU/add/pool = 0.  Projection shortcut (1x1 conv, stride s) wherever the shape
# changes (option B).  For 18/34 also without projections (option A, parameter-free).
# Bottleneck v1 (paper): stride 2 on the first 1x1 of the first block of conv3_x..conv5_x.
# Bottleneck v1.5 (torchvision): stride 2 on the 3x3; that 1x1 runs at the input size.
# ---------------------------------------------------------------------------------------
_CONV1 = 112*112*7*7*3*64
_BASIC_PROJ = 28*28*64*128 + 14*14*128*256 + 7*7*256*512


def _basic(n2, n3, n4, n5):
    return (
        _CONV1,
        n2*2*56*56*3*3*64*64,
        28*28*3*3*64*128 + 28*28*1*1*64*128 + (2*n3 - 1)*28*28*3*3*128*128,
        14*14*3*3*128*256 + 14*14*1*1*128*256 + (2*n4 - 1)*14*14*3*3*256*256,
        7*7*3*3*256*512 + 7*7*1*1*256*512 + (2*n5 - 1)*7*7*3*3*512*512,
        512*1000,
    )


def _bottleneck(n2, n3, n4, n5, v15):
    # first block of each stage: 1x1 reduce, 3x3, 1x1 expand, 1x1 projection
    s3_first_1x1 = (56*56 if v15 else 28*28)*256*128
    s4_first_1x1 = (28*28 if v15 else 14*14)*512*256
    s5_first_1x1 = (14*14 if v15 else 7*7)*1024*512
    return (
        _CONV1,
        56*56*(64*64 + 3*3*64*64 + 64*256 + 64*256)
        + (n2 - 1)*56*56*(256*64 + 3*3*64*64 + 64*256),
        s3_first_1x1 + 28*28*(3*3*128*128 + 128*512 + 256*512)
        + (n3 - 1)*28*28*(512*128 + 3*3*128*128 + 128*512),
        s4_first_1x1 + 14*14*(3*3*256*256 + 256*1024 + 512*1024)
        + (n4 - 1)*14*14*(1024*256 + 3*3*256*256 + 256*1024),
        s5_first_1x1 + 7*7*(3*3*512*512 + 512*2048 + 1024*2048)
        + (n5 - 1)*7*7*(2048*512 + 3*3*512*512 + 512*2048),
        2048*1000,
    )


# breakdown tuples: (conv1, conv2_x, conv3_x, conv4_x, conv5_x, fc)
RESNET_FLOPS = {
    18: {"printed_text": "1.8 x 10^9", "printed": 18 * 10**8, "block": "basic",
         "blocks_per_stage": (2, 2, 2, 2), "weight_layers": 1 + 2*(2+2+2+2) + 1,
         "macs_breakdown": _basic(2, 2, 2, 2)},
    34: {"printed_text": "3.6 x 10^9", "printed": 36 * 10**8, "block": "basic",
         "blocks_per_stage": (3, 4, 6, 3), "weight_layers": 1 + 2*(3+4+6+3) + 1,
         "macs_breakdown": _basic(3, 4, 6, 3)},
    50: {"printed_text": "3.8 x 10^9", "printed": 38 * 10**8, "block": "bottleneck",
         "blocks_per_stage": (3, 4, 6, 3), "weight_layers": 1 + 3*(3+4+6+3) + 1,
         "macs_breakdown_v1": _bottleneck(3, 4, 6, 3, False),
         "macs_breakdown_v1_5": _bottleneck(3, 4, 6, 3, True)},
    101: {"printed_text": "7.6 x 10^9", "printed": 76 * 10**8, "block": "bottleneck",
          "blocks_per_stage": (3, 4, 23, 3), "weight_layers": 1 + 3*(3+4+23+3) + 1,
          "macs_breakdown_v1": _bottleneck(3, 4, 23, 3, False),
          "macs_breakdown_v1_5": _bottleneck(3, 4, 23, 3, True)},
    152: {"printed_text": "11.3 x 10^9", "printed": 113 * 10**8, "block": "bottleneck",
          "blocks_per_stage": (3, 8, 36, 3), "weight_layers": 1 + 3*(3+8+36+3) + 1,
          "macs_breakdown_v1": _bottleneck(3, 8, 36, 3, False),
          "macs_breakdown_v1_5": _bottleneck(3, 8, 36, 3, True)},
}
for _d in (18, 34):
    RESNET_FLOPS[_d]["macs"] = sum(RESNET_FLOPS[_d]["macs_breakdown"])
    RESNET_FLOPS[_d]["macs_no_projection"] = RESNET_FLOPS[_d]["macs"] - _BASIC_PROJ
for _d in (50, 101, 152):
    RESNET_FLOPS[_d]["macs_v1"] = sum(RESNET_FLOPS[_d]["macs_breakdown_v1"])
    RESNET_FLOPS[_d]["macs_v1_5"] = sum(RESNET_FLOPS[_d]["macs_breakdown_v1_5"])
    RESNET_FLOPS[_d]["macs"] = RESNET_FLOPS[_d]["macs_v1"]   # the paper's architecture
del _d, _basic, _bottleneck, _CONV1, _BASIC_PROJ
# exact: 18 -> 1,814,073,344 (no proj 1,794,805,760); 34 -> 3,663,761,408 (no proj
# 3,644,493,824); 50 v1 3,857,973,248 / v1.5 4,089,184,256; 101 v1 7,570,194,432 /
# v1.5 7,801,405,440; 152 v1 11,282,415,616 / v1.5 11,513,626,624.
RESNET_FLOPS[18]["verdict"] = MATCH                       # 1.814
RESNET_FLOPS[34]["verdict"] = MATCH_TRUNCATED             # 3.664 -> 3.7 (3.644 w/o proj -> 3.6)
RESNET_FLOPS[34]["verdict_no_projection"] = MATCH
RESNET_FLOPS[50]["verdict"] = MATCH_TRUNCATED             # v1 3.858 -> 3.9 rounded
RESNET_FLOPS[50]["verdict_v1_5"] = MISMATCH               # 4.089
RESNET_FLOPS[101]["verdict"] = MATCH                      # v1 7.570
RESNET_FLOPS[101]["verdict_v1_5"] = MISMATCH              # 7.801
RESNET_FLOPS[152]["verdict"] = MATCH                      # v1 11.282
RESNET_FLOPS[152]["verdict_v1_5"] = MISMATCH              # 11.514

# ResNet bottleneck slide (seed 001): per output position, 256-channel input and output.
RESNET_BOTTLENECK_SLIDE = {
    "plain_3x3": {"printed_text": "256 x 256 x 3 x 3 ~ 600K", "printed": 600_000,
                  "exact": 256*256*3*3, "verdict": MATCH},          # 589,824 (1 sig. fig.)
    "reduce_1x1": {"printed_text": "256 x 64 x 1 x 1 ~ 16K", "printed": 16_000,
                   "exact": 256*64*1*1, "verdict": MATCH},          # 16,384 = 16 x 1024
    "conv_3x3": {"printed_text": "64 x 64 x 3 x 3 ~ 36K", "printed": 36_000,
                 "exact": 64*64*3*3, "verdict": MATCH_TRUNCATED},  # 36,864 = 36 x 1024
    "expand_1x1": {"printed_text": "64 x 256 x 1 x 1 ~ 16K", "printed": 16_000,
                   "exact": 64*256*1*1, "verdict": MATCH},          # 16,384
    "printed_total_text": "Total: ~70K",
    "printed_total": 70_000,
    "printed_parts_sum": 16_000 + 36_000 + 16_000,                  # 68K
    "exact_total": 256*64 + 64*64*3*3 + 64*256,                    # 69,632
    "total_verdict": MATCH,
    "ratio": (256*256*3*3) / (256*64 + 64*64*3*3 + 64*256),          # ~8.47
    "macs_at_56x56_plain": 56*56*256*256*3*3,
    "macs_at_56x56_bottleneck": 56*56*(256*64 + 64*64*3*3 + 64*256),
}

# ---------------------------------------------------------------------------------------
# AlexNet (seeds 000, 001, 002), simplified single-tower description, 227x227x3 input.
# out = (in + 2*pad - k) // stride + 1
# ---------------------------------------------------------------------------------------
ALEXNET = {
    "input_shape": (227, 227, 3),
    "conv1_params_printed_text": "11 x 11 x 3 x 96 = 35K",
    "conv1_params_printed": 35_000,
    "conv1_params_weights": 11*11*3*96,             # 34,848
    "conv1_params_with_bias": 11*11*3*96 + 96,      # 34,944
    "conv1_verdict": MATCH,                         # decimal K (K=1024 would give 34K)
    "conv1_size_formula": (227 - 11)//4 + 1,        # 55, "(227 - 11) / 4 + 1 = 55"
    "conv1_size_with_224": (224 - 11) / 4 + 1,      # 54.25: not an integer
    "pool1_size_formula": (55 - 3)//2 + 1,          # 27
    "layers": [
        # name, printed output shape, exact output shape, weights (ungrouped), biases
        {"name": "CONV1", "spec": "96 11x11 stride 4 pad 0", "printed_shape": (55, 55, 96),
         "shape": ((227 - 11)//4 + 1, (227 - 11)//4 + 1, 96),
         "params_weights": 11*11*3*96, "biases": 96},
        {"name": "MAX POOL1", "spec": "3x3 stride 2", "printed_shape": (27, 27, 96),
         "shape": ((55 - 3)//2 + 1, (55 - 3)//2 + 1, 96), "params_weights": 0, "biases": 0},
        {"name": "NORM1", "spec": "LRN", "printed_shape": (27, 27, 96),
         "shape": (27, 27, 96), "params_weights": 0, "biases": 0},
        {"name": "CONV2", "spec": "256 5x5 stride 1 pad 2", "printed_shape": (27, 27, 256),
         "shape": ((27 + 4 - 5)//1 + 1, (27 + 4 - 5)//1 + 1, 256),
         "params_weights": 5*5*96*256, "biases": 256},
        {"name": "MAX POOL2", "spec": "3x3 stride 2", "printed_shape": (13, 13, 256),
         "shape": ((27 - 3)//2 + 1, (27 - 3)//2 + 1, 256), "params_weights": 0, "biases": 0},
        {"name": "NORM2", "spec": "LRN", "printed_shape": (13, 13, 256),
         "shape": (13, 13, 256), "params_weights": 0, "biases": 0},
        {"name": "CONV3", "spec": "384 3x3 stride 1 pad 1", "printed_shape": (13, 13, 384),
         "shape": ((13 + 2 - 3)//1 + 1, (13 + 2 - 3)//1 + 1, 384),
         "params_weights": 3*3*256*384, "biases": 384},
        {"name": "CONV4", "spec": "384 3x3 stride 1 pad 1", "printed_shape": (13, 13, 384),
         "shape": ((13 + 2 - 3)//1 + 1, (13 + 2 - 3)//1 + 1, 384),
         "params_weights": 3*3*384*384, "biases": 384},
        {"name": "CONV5", "spec": "256 3x3 stride 1 pad 1", "printed_shape": (13, 13, 256),
         "shape": ((13 + 2 - 3)//1 + 1, (13 + 2 - 3)//1 + 1, 256),
         "params_weights": 3*3*384*256, "biases": 256},
        {"name": "MAX POOL3", "spec": "3x3 stride 2", "printed_shape": (6, 6, 256),
         "shape": ((13 - 3)//2 + 1, (13 - 3)//2 + 1, 256), "params_weights": 0, "biases": 0},
        {"name": "FC6", "spec": "4096", "printed_shape": (4096,), "shape": (4096,),
         "params_weights": 6*6*256*4096, "biases": 4096},
        {"name": "FC7", "spec": "4096", "printed_shape": (4096,), "shape": (4096,),
         "params_weights": 4096*4096, "biases": 4096},
        {"name": "FC8", "spec": "1000", "printed_shape": (1000,), "shape": (1000,),
         "params_weights": 4096*1000, "biases": 1000},
    ],
    "shapes_verdict": MATCH,   # every printed shape equals the computed one
    "split_shape_printed": (55, 55, 48),       # "[55x55x48] x 2"
    "split_shape": (55, 55, 96 // 2),
    # "60M params" (seed 001)
    "printed_params_text": "60M params",
    "printed_params": 60 * 10**6,
    "params_ungrouped_weights": (11*11*3*96 + 5*5*96*256 + 3*3*256*384 + 3*3*384*384
                                 + 3*3*384*256 + 6*6*256*4096 + 4096*4096 + 4096*1000),
    "params_ungrouped_with_bias": (11*11*3*96 + 5*5*96*256 + 3*3*256*384 + 3*3*384*384
                                   + 3*3*384*256 + 6*6*256*4096 + 4096*4096 + 4096*1000
                                   + 96 + 256 + 384 + 384 + 256 + 4096 + 4096 + 1000),
    # original two-GPU net: CONV2, CONV4, CONV5 only see their own GPU's half (groups = 2)
    "params_grouped_with_bias": (11*11*3*96 + 5*5*48*256 + 3*3*256*384 + 3*3*192*384
                                 + 3*3*192*256 + 6*6*256*4096 + 4096*4096 + 4096*1000
                                 + 96 + 256 + 384 + 384 + 256 + 4096 + 4096 + 1000),
    "params_verdict": MATCH,   # 60.97M grouped / 62.38M ungrouped, both "60M" at 1 sig. fig.
    # "650K units" (seed 001): outputs of conv and FC layers
    "printed_units_text": "650K units",
    "printed_units": 650_000,
    "units": 55*55*96 + 27*27*256 + 13*13*384 + 13*13*384 + 13*13*256 + 4096 + 4096 + 1000,
    "units_verdict": MISMATCH,  # 659,272 -> 660K; "650K" is a loose approximation
    "weight_layers_printed": 8,
    "weight_layers": 5 + 3,
    "hidden_layers_printed": 7,
    "hidden_layers": 5 + 2,
}

# ZFNet (seed 001 caption): 224 input, 96 filters 7x7 stride 2, then 3x3/2 max pool,
# "96 different 55 by 55 element feature maps"; FC input "6 * 6 * 256 = 9216".
ZFNET = {
    "fc_input_printed": 9216,
    "fc_input": 6*6*256,
    "conv1_out_pad0": (224 - 7)//2 + 1,                 # 109
    "conv1_out_pad1": (224 + 2 - 7)//2 + 1,             # 110
    "pool1_out_from_110_floor": (110 - 3)//2 + 1,       # 54
    "pool1_out_from_110_ceil": -(-(110 - 3)//2) + 1,    # 55
    "pool1_out_from_109_floor": (109 - 3)//2 + 1,       # 54
    "pool1_out_from_109_ceil": -(-(109 - 3)//2) + 1,    # 54
    "printed_pool1_out": 55,
    "verdict": MATCH,  # only with conv pad 1 and a ceil-mode (or padded) pool
}

# ---------------------------------------------------------------------------------------
# All-CNN (seed 004), CIFAR-10: 32x32x3 input, 10 classes, params WITH biases.
# Reading: every conv keeps its size ("same" padding: pad = k//2) except the 3x3 conv 192
# that follows the second downsampling, which is unpadded (8x8 -> 6x6), so that global
# averaging is over 6x6 as the paper states.  3x3 max pool stride 2 pad 1 (32->16->8).
# Strided-CNN-X: pools removed, stride 2 on the conv just before each pool.
# ConvPool-CNN-X: an extra 3x3 conv (same channels, stride 1) before each pool.
# All-CNN-X: each pool replaced by a 3x3 conv (same channels) with stride 2, pad 1.
# Layer spec: ("conv", k, out_channels, stride, pad) or ("maxpool", k, stride, pad).
# ---------------------------------------------------------------------------------------
_TAIL = [("conv", 3, 192, 1, 0), ("conv", 1, 192, 1, 0), ("conv", 1, 10, 1, 0)]
_POOL = ("maxpool", 3, 2, 1)
# params of the shared tail: 3x3 192->192, 1x1 192->192, 1x1 192->10, with biases
_TAIL_P = (3*3*192*192 + 192) + (192*192 + 192) + (192*10 + 10)
_X96 = 3*3*96*96 + 96        # extra / replacing 3x3 conv 96->96
_X192 = 3*3*192*192 + 192    # extra / replacing 3x3 conv 192->192
_A = (5*5*3*96 + 96) + (5*5*96*192 + 192) + _TAIL_P
_B = (5*5*3*96 + 96) + (96*96 + 96) + (5*5*96*192 + 192) + (192*192 + 192) + _TAIL_P
_C = ((3*3*3*96 + 96) + (3*3*96*96 + 96) + (3*3*96*192 + 192) + (3*3*192*192 + 192)
      + _TAIL_P)

ALL_CNN = {
    "Model A": {"printed_text": "≈0.9M", "printed": 900_000, "params_with_bias": _A,
                "layers": [("conv", 5, 96, 1, 2), _POOL, ("conv", 5, 192, 1, 2), _POOL] + _TAIL},
    "Strided-CNN-A": {"printed_text": "≈0.9M", "printed": 900_000, "params_with_bias": _A,
                      "layers": [("conv", 5, 96, 2, 2), ("conv", 5, 192, 2, 2)] + _TAIL},
    "ConvPool-CNN-A": {"printed_text": "≈1.28M", "printed": 1_280_000,
                       "params_with_bias": _A + _X96 + _X192,
                       "layers": [("conv", 5, 96, 1, 2), ("conv", 3, 96, 1, 1), _POOL,
                                  ("conv", 5, 192, 1, 2), ("conv", 3, 192, 1, 1), _POOL]
                       + _TAIL},
    "All-CNN-A": {"printed_text": "≈1.28M", "printed": 1_280_000,
                  "params_with_bias": _A + _X96 + _X192,
                  "layers": [("conv", 5, 96, 1, 2), ("conv", 3, 96, 2, 1),
                             ("conv", 5, 192, 1, 2), ("conv", 3, 192, 2, 1)] + _TAIL},
    "Model B": {"printed_text": "≈1M", "printed": 1_000_000, "params_with_bias": _B,
                "layers": [("conv", 5, 96, 1, 2), ("conv", 1, 96, 1, 0), _POOL,
                           ("conv", 5, 192, 1, 2), ("conv", 1, 192, 1, 0), _POOL] + _TAIL},
    "Strided-CNN-B": {"printed_text": "≈1M", "printed": 1_000_000, "params_with_bias": _B,
                      "layers": [("conv", 5, 96, 1, 2), ("conv", 1, 96, 2, 0),
                                 ("conv", 5, 192, 1, 2), ("conv", 1, 192, 2, 0)] + _TAIL},
    "ConvPool-CNN-B": {"printed_text": "≈1.35M", "printed": 1_350_000,
                       "params_with_bias": _B + _X96 + _X192,
                       "layers": [("conv", 5, 96, 1, 2), ("conv", 1, 96, 1, 0),
                                  ("conv", 3, 96, 1, 1), _POOL,
                                  ("conv", 5, 192, 1, 2), ("conv", 1, 192, 1, 0),
                                  ("conv", 3, 192, 1, 1), _POOL] + _TAIL},
    "All-CNN-B": {"printed_text": "≈1.35M", "printed": 1_350_000,
                  "params_with_bias": _B + _X96 + _X192,
                  "layers": [("conv", 5, 96, 1, 2), ("conv", 1, 96, 1, 0),
                             ("conv", 3, 96, 2, 1),
                             ("conv", 5, 192, 1, 2), ("conv", 1, 192, 1, 0),
                             ("conv", 3, 192, 2, 1)] + _TAIL},
    "Model C": {"printed_text": "≈1.3M", "printed": 1_300_000, "params_with_bias": _C,
                "layers": [("conv", 3, 96, 1, 1), ("conv", 3, 96, 1, 1), _POOL,
                           ("conv", 3, 192, 1, 1), ("conv", 3, 192, 1, 1), _POOL] + _TAIL},
    "Strided-CNN-C": {"printed_text": "≈1.3M", "printed": 1_300_000, "params_with_bias": _C,
                      "layers": [("conv", 3, 96, 1, 1), ("conv", 3, 96, 2, 1),
                                 ("conv", 3, 192, 1, 1), ("conv", 3, 192, 2, 1)] + _TAIL},
    "ConvPool-CNN-C": {"printed_text": "≈1.4M", "printed": 1_400_000,
                       "params_with_bias": _C + _X96 + _X192,
                       "layers": [("conv", 3, 96, 1, 1), ("conv", 3, 96, 1, 1),
                                  ("conv", 3, 96, 1, 1), _POOL,
                                  ("conv", 3, 192, 1, 1), ("conv", 3, 192, 1, 1),
                                  ("conv", 3, 192, 1, 1), _POOL] + _TAIL},
    "All-CNN-C": {"printed_text": "≈1.4M", "printed": 1_400_000,
                  "params_with_bias": _C + _X96 + _X192,
                  "layers": [("conv", 3, 96, 1, 1), ("conv", 3, 96, 1, 1),
                             ("conv", 3, 96, 2, 1),
                             ("conv", 3, 192, 1, 1), ("conv", 3, 192, 1, 1),
                             ("conv", 3, 192, 2, 1)] + _TAIL},
}
del _TAIL, _POOL, _TAIL_P, _X96, _X192, _A, _B, _C
# exact with biases: A 839,242  B 885,610  C 954,730  ConvPool/All-A 1,254,250
#                    ConvPool/All-B 1,300,618  ConvPool/All-C 1,369,738
for _name, _m in ALL_CNN.items():
    _m["input_shape"] = (32, 32, 3)
    _m["num_classes"] = 10
    _m["final_spatial"] = 6       # verified for every model by the layer list above
for _name, _v in (("Model A", MISMATCH), ("Strided-CNN-A", MISMATCH),
                  ("ConvPool-CNN-A", MISMATCH), ("All-CNN-A", MISMATCH),
                  ("Model B", MATCH), ("Strided-CNN-B", MATCH),   # 0.886M -> "1M" at 1M precision
                  ("ConvPool-CNN-B", MISMATCH), ("All-CNN-B", MISMATCH),
                  ("Model C", MISMATCH), ("Strided-CNN-C", MISMATCH),
                  ("ConvPool-CNN-C", MATCH), ("All-CNN-C", MATCH)):
    ALL_CNN[_name]["verdict"] = _v
del _name, _m, _v

# ---------------------------------------------------------------------------------------
# Layer counts printed in the seeds.
# ---------------------------------------------------------------------------------------
LAYER_COUNTS = {
    "AlexNet": {"printed": 8, "exact": 5 + 3},
    "VGG16": {"printed": 16, "exact": 13 + 3},
    "VGG19": {"printed": 19, "exact": 16 + 3},
    "GoogLeNet": {"printed": 22, "exact": 1 + 2 + 9*2 + 1},
    "ResNet-18": {"printed": 18, "exact": 1 + 2*(2+2+2+2) + 1},
    "ResNet-34": {"printed": 34, "exact": 1 + 2*(3+4+6+3) + 1},
    "ResNet-50": {"printed": 50, "exact": 1 + 3*(3+4+6+3) + 1},
    "ResNet-101": {"printed": 101, "exact": 1 + 3*(3+4+23+3) + 1},
    "ResNet-152": {"printed": 152, "exact": 1 + 3*(3+8+36+3) + 1},
}
