"""tapeproxy's benchmarks against its peers (mitmdump, vcrpy), run by `make bench`.

`python -m bench` runs every scenario on 127.0.0.1 against a fake upstream, with each figure
the median of interleaved runs reported as a ratio to the peer measured in the same run, and
writes `bench/RESULTS.md`. `python -m bench --only replay,size --quick` runs a part.
"""

__all__: list[str] = []
