package dev.mooncakej.cli;

import picocli.CommandLine.Command;

@Command(name = "engine", description = "Prefill and decode tokens/s beside llama.cpp on the same file.")
final class EngineBench implements Runnable {
    @Override
    public void run() {
        throw new UnsupportedOperationException("bench engine is not built yet");
    }
}
