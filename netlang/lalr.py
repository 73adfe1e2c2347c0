"""A lean LALR(1) driver over the tables Lark builds from grammars/netlang.lark.

Lark's own parser makes a parse tree, then netlang's transformer turns it into the AST: every
reduction goes through four wrappers (position propagation, child filter, single-child
expansion, the tree node), and the precedence chain of the expression grammar costs ten
reductions per atom. This driver reduces straight into the AST builder's methods, with the
same children and the same source spans as that path would give them, and passes an atom up a
chain of `?rule`s with nothing but a table lookup.

It handles only input that parses: at the first token the tables do not accept, or any error
while building, parser.py runs Lark's own path again, so every syntax error keeps Lark's exact
words (and tests compare the ASTs of both paths).
"""
from __future__ import annotations


class Rejected(Exception):
    """The tables do not accept the input: the caller runs Lark's path for the error."""


def _plan(rule, maybe_placeholders: bool = True):
    """How one rule's reduction shapes its children, as Lark's tree builder does."""
    exp = rule.expansion
    opts = rule.options
    empty = opts.empty_indices if maybe_placeholders else ()
    if empty:
        bits = "".join(str(int(b)) for b in empty)
        nones = [len(ones) for ones in bits.split("0")]
    else:
        nones = [0] * (len(exp) + 1)
    include, pending = [], 0
    for i, sym in enumerate(exp):
        pending += nones[i]
        if opts.keep_all_tokens or not (sym.is_term and sym.filter_out):
            include.append((i, not sym.is_term and sym.name.startswith("_"), pending))
            pending = 0
    pending += nones[len(exp)]
    inline = rule.origin.name.startswith("_")
    single = bool(opts.expand1 and not rule.alias)
    name = str(rule.alias or rule.origin.name)
    # a unit link of the precedence chain: the child goes up as it is, span and all
    unit = single and len(exp) == 1 and len(include) == 1 and not include[0][1] and not pending \
        and not include[0][2]
    return len(exp), rule.origin.name, tuple(include), pending, inline, single, name, unit


class Tables:
    """Lark's parse table, re-keyed for the driver: actions as ints (a shift's new state, or
    ~rule for a reduce), gotos by nonterminal."""

    def __init__(self, lark):
        from lark.parsers.lalr_analysis import Shift
        table = lark.parser.parser.parser.parse_table         # (Lark -> frontend -> LALR -> tables)
        rules: dict = {}
        self.actions: dict = {}
        self.gotos: dict = {}
        for state, row in table.states.items():
            acts, gotos = {}, {}
            for sym, (action, arg) in row.items():
                if action is Shift:
                    (acts if sym.isupper() or sym == "$END" else gotos)[sym] = arg
                else:
                    acts[sym] = ~rules.setdefault(id(arg), (len(rules), arg))[0]
            self.actions[state] = acts
            self.gotos[state] = gotos
        self.rules = [None] * len(rules)
        for index, rule in rules.values():
            self.rules[index] = _plan(rule)
        self.start = dict(table.start_states)
        self.end = dict(table.end_states)


def run(tab: Tables, tokens, start: str, builder):
    """Parse `tokens` (the post-lexer's stream) from `start` into what `builder` makes."""
    actions, gotos = tab.actions, tab.gotos
    rules = tab.rules
    methods = [None if plan[4] else getattr(builder, plan[6], None) for plan in rules]   # (units have none)
    states = [tab.start[start]]
    values: list = []
    spans: list = []
    end_state = tab.end[start]

    def reduce(r: int):
        size, origin, include, after, inline, single, _, unit = rules[r]
        if unit:
            states[-1] = gotos[states[-2]][origin]
            return
        if size:
            vals = values[-size:]
            sps = spans[-size:]
            del values[-size:], spans[-size:], states[-size:]
            first = next((s for s in sps if s is not None), None)
            if first is not None:
                lastspan = next(s for s in reversed(sps) if s is not None)
                span = (first[0], first[1], lastspan[2], lastspan[3])
            else:
                span = None
        else:
            vals, span = (), None
        children: list = []
        for i, expand, nones in include:
            if nones:
                children += [None] * nones
            if expand:
                if children:
                    children += vals[i]
                else:           # a left-recursive list grows in place: no copy per item
                    children = vals[i]
            else:
                children.append(vals[i])
        if after:
            children += [None] * after
        if inline:
            value = children
        elif single and len(children) == 1:
            value = children[0]
        else:
            value = methods[r](span, children)
        states.append(gotos[states[-1]][origin])
        values.append(value)
        spans.append(span)

    for tok in tokens:
        kind = tok.type
        while True:
            act = actions[states[-1]].get(kind)
            if act is None:
                raise Rejected
            if act >= 0:
                states.append(act)
                values.append(tok)
                spans.append((tok.line, tok.column, tok.end_line, tok.end_column))
                break
            reduce(~act)
    while True:
        act = actions[states[-1]].get("$END")
        if act is None or act >= 0:
            raise Rejected
        reduce(~act)
        if states[-1] == end_state:
            return values[-1]
