"""Encode/decode cost of one ring command: construct (interpreted and
compiled) against the fast codec derived from the same declaration.

    .venv/bin/python benchmarks/codec.py
"""

from __future__ import annotations

import timeit

from structs import fw


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def main() -> None:
    print(f"{'struct':<12} {'fw':<4} {'construct':>10} {'compiled':>10} {'fast codec':>11}  (encode+decode, us)")
    for name in ("LaunchCmd", "CopyCmd", "FenceWriteCmd"):
        for v in fw.VERSIONS:
            layout = fw.ALL[name].layout(v)
            codec = layout.codec()
            rec = codec.make(type=1, entry_size=layout.sizeof(), seqno=7)
            obj = layout.parse(codec.pack(rec))
            compiled = layout.subcon.compile()
            t_construct = per_call_us(lambda: layout.subcon.parse(layout.subcon.build(obj)), 2000)
            t_compiled = per_call_us(lambda: compiled.parse(compiled.build(obj)), 2000)
            t_fast = per_call_us(lambda: codec.unpack(codec.pack(rec)), 20000)
            print(f"{name:<12} {fw.version_str(v):<4} {t_construct:>10.1f} {t_compiled:>10.1f} {t_fast:>11.2f}")


if __name__ == "__main__":
    main()
