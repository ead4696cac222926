package dev.mooncakej.cli;

import picocli.CommandLine.Command;

@Command(
        name = "bench",
        description = "Benchmarks of whole paths, each beside its anchor measured in the same run.",
        subcommands = {
            EngineBench.class,
            ServeBench.class,
            TransferBench.class,
            StoreBench.class,
            FetchBench.class,
            MigrationBench.class
        })
final class BenchCommand {}
