"""qforge_fuzzer: one libFuzzer target and the test that replays its corpus."""

def qforge_fuzzer(name, srcs, deps, corpus):
    """A fuzz target `name` and `name`_corpus_test.

    Built with --config=fuzz (tools/fuzz.sh: clang, libFuzzer, ASan, UBSan),
    `name` is a libFuzzer binary; otherwise it replays the files it is given.
    The test replays fuzz/corpus/`corpus` (the seeds and every past finding)
    in every `bazel test //...`.
    """
    native.cc_binary(
        name = name,
        srcs = srcs + select({
            ":libfuzzer": [],
            "//conditions:default": ["replay_main.cc"],
        }),
        linkopts = select({
            ":libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = deps,
    )
    native.cc_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = srcs + ["replay_main.cc"],
        args = ["fuzz/corpus/" + corpus],
        data = native.glob(["corpus/" + corpus + "/**"]),
        deps = deps,
    )
