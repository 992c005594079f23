"""Each provider's wire format, both ways: reading an answer (text, tool calls, usage) and
writing one (plain or streamed, with its headers and its errors). Pure: no I/O, no proxy.

`read.extract` reads any known answer; `stubs` and faults write them through `write`.
"""

__all__: list[str] = []
