"""Reading an optimized HLO module's text (``compiled.as_text()``): shapes and bytes, computations, and each
instruction's opcode, result and operands. Shared by the TPU ahead-of-time report (``train/aot.py``), the
decode profiler (``scripts/profile_decode.py``) and the tests that assert structural facts of compiled programs.
"""
from __future__ import annotations

import dataclasses
import math
import re

SHAPE = re.compile(r"\b(pred|s4|u4|s8|u8|s16|u16|s32|u32|s64|u64|f16|bf16|f32|f64|f8e4m3fn|f8e5m2)\[([0-9,]*)\]")
BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
         "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "f8e4m3fn": 1, "f8e5m2": 1}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*?) ([a-z][\w\-]*)\((.*)$")
_OPERAND = re.compile(r"%([\w.\-]+)")
_CALLED = re.compile(r"\b(?:body|condition|to_apply|calls|branch_computations)=\{?%([\w.\-]+)")


def shapes(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """Every ``dtype[dims]`` in ``text``, as (dtype, dims)."""
    return [(dtype, tuple(int(d) for d in dims.split(",") if d)) for dtype, dims in SHAPE.findall(text)]


def nbytes(shape_list) -> int:
    """Bytes of the arrays ``shape_list`` (as :func:`shapes` gives them)."""
    return int(sum(BYTES[dtype] * math.prod(dims) for dtype, dims in shape_list))


def computations(text: str) -> tuple[dict[str, list[str]], str]:
    """The HLO module's computations (name -> instruction lines) and the entry's name."""
    found: dict[str, list[str]] = {}
    entry = current = None
    for line in text.splitlines():
        header = re.match(r"(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
        if header and not line[:1].isspace():
            current = header.group(2)
            found[current] = []
            entry = current if header.group(1) else entry
        elif line.rstrip() == "}":  # (a custom call's multi-line config may put "}}, ..." at column 0)
            current = None
        elif current is not None and "=" in line:
            found[current].append(line)
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    return found, entry


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One HLO instruction: its opcode, result shapes, operand shapes (looked up by name), the computation it
    belongs to and the computations it calls (a fusion's fused computation is not counted as a call)."""

    name: str
    opcode: str
    result: list
    operands: list
    computation: str
    calls: tuple


def instructions(text: str) -> dict[str, Instruction]:
    """Every instruction of the module, by name."""
    parsed, results = [], {}
    for computation, lines in computations(text)[0].items():
        for line in lines:
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            name, result, opcode, rest = match.groups()
            results[name] = shapes(result)
            calls = () if opcode == "fusion" else tuple(_CALLED.findall(rest))
            parsed.append((name, opcode, computation, _OPERAND.findall(rest.split("), ")[0]), calls))
    return {name: Instruction(name, opcode, results[name], [s for o in operands for s in results.get(o, [])],
                              computation, calls)
            for name, opcode, computation, operands, calls in parsed}


def loop_instructions(ops: dict[str, Instruction]) -> set[str]:
    """The names of the instructions that run inside the module's outermost ``while`` loop: its body's, and
    those of whatever the body calls (nested loops included); empty without a loop. Of several outermost
    loops, the one that runs the most instructions (a decoding loop, not a small loop beside it)."""
    members: dict[str, list[str]] = {}
    for op in ops.values():
        members.setdefault(op.computation, []).append(op.name)
    loops = [op for op in ops.values() if op.opcode == "while"]
    bodies = {c for op in loops for c in op.calls}

    def inside(loop: Instruction) -> set[str]:
        names: set[str] = set()
        pending = list(loop.calls)
        while pending:
            for name in members.get(pending.pop(), []):
                if name not in names:
                    names.add(name)
                    pending.extend(ops[name].calls)
        return names

    return max((inside(op) for op in loops if op.computation not in bodies), key=len, default=set())


def is_product(op: Instruction) -> bool:
    """A matrix product: a ``dot`` or ``convolution``, or a fusion built around one (XLA:CPU names them
    ``*dot*_fusion``, and ``ynn_fusion`` where YNNPACK runs the product)."""
    name = op.name.lower()
    return op.opcode in ("dot", "convolution") or (op.opcode == "fusion" and ("dot" in name or "ynn" in name))
