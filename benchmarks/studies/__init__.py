"""One-off studies: each module answers one question once; its result and reading are in docs/BENCHMARKS.md."""
