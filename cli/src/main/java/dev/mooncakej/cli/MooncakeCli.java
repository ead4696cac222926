package dev.mooncakej.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the commands behind {@code ./mooncakej}. */
@Command(
        name = "mooncakej",
        mixinStandardHelpOptions = true,
        version = "mooncakej 0.1.0",
        description = "Mooncake-J: KVCache-centric disaggregated LLM serving.",
        subcommands = {
            ModelCommand.class,
            BenchCommand.class,
            SimulateCommand.class,
            TraceCommand.class,
            SoakCommand.class,
            ReplayCommand.class,
            RdmaCommand.class
        })
public final class MooncakeCli implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        CommandLine cl = new CommandLine(new MooncakeCli());
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("mooncakej: " + (ex.getMessage() != null ? ex.getMessage() : ex.toString()));
            return 1;
        });
        System.exit(cl.execute(args));
    }
}
