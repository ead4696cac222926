package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The module boundaries and habits the house style asks for, checked on the tree itself: the
 * simulator and the benchmarks do not depend on the conductor, Spring is a dependency of the three
 * apps only, every package says what it holds, and docs/architecture.md names only classes that exist.
 */
class ProjectConventionsTest {
    private static final Path ROOT = LocalCluster.projectRoot();
    private static final Pattern DEPENDENCY = Pattern.compile("<dependency>(.*?)</dependency>", Pattern.DOTALL);

    private static List<String> dependencies(String module) throws IOException {
        List<String> out = new ArrayList<>();
        Matcher m = DEPENDENCY.matcher(Files.readString(ROOT.resolve(module).resolve("pom.xml")));
        while (m.find()) out.add(m.group(1).replaceAll("\\s+", ""));
        return out;
    }

    @Test
    void theSimulatorAndTheBenchmarksDoNotDependOnTheConductor() throws IOException {
        for (String module : List.of("simulator", "bench", "cli", "scheduler")) {
            assertThat(dependencies(module))
                    .as("%s/pom.xml", module)
                    .noneMatch(d -> d.contains("<artifactId>mooncakej-conductor</artifactId>"));
        }
        assertThat(dependencies("simulator")).anyMatch(d -> d.contains("<artifactId>mooncakej-scheduler</artifactId>"));
        assertThat(dependencies("bench")).anyMatch(d -> d.contains("<artifactId>mooncakej-scheduler</artifactId>"));
    }

    @Test
    void springIsADependencyOfTheThreeAppsOnly() throws IOException {
        for (String module : List.of(
                "kvcache-common",
                "engine",
                "scheduler",
                "kvtransfer-native",
                "kvstore",
                "cluster",
                "simulator",
                "bench",
                "cli")) {
            assertThat(dependencies(module))
                    .as("%s/pom.xml", module)
                    .noneMatch(d -> d.contains("<groupId>org.springframework"));
        }
    }

    @Test
    void everyPackageHasAPackageInfo() throws IOException {
        List<Path> missing = new ArrayList<>();
        try (Stream<Path> files = Files.walk(ROOT)) {
            files.filter(p -> p.toString().contains("/src/main/java/")
                            && !p.toString().contains("/target/")
                            && !p.toString().contains("/tools/"))
                    .filter(p -> p.toString().endsWith(".java"))
                    .map(Path::getParent)
                    .distinct()
                    .filter(dir -> !Files.exists(dir.resolve("package-info.java")))
                    .forEach(missing::add);
        }
        assertThat(missing).as("packages without package-info.java").isEmpty();
    }

    @Test
    void theArchitectureDocNamesOnlyClassesThatExist() throws IOException {
        String doc = Files.readString(ROOT.resolve("docs/architecture.md"));
        Set<String> declared = new HashSet<>(); // top-level and nested types
        Pattern decl = Pattern.compile("\\b(?:class|record|interface|enum)\\s+([A-Z][A-Za-z0-9]*)");
        try (Stream<Path> files = Files.walk(ROOT)) {
            List<Path> sources = files.filter(
                            p -> p.toString().endsWith(".java") && !p.toString().contains("/target/"))
                    .toList();
            for (Path p : sources) {
                Matcher d = decl.matcher(Files.readString(p));
                while (d.find()) declared.add(d.group(1));
            }
        }
        Matcher m = Pattern.compile("`([A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*)(\\.[a-z][A-Za-z0-9]*)?`")
                .matcher(doc);
        List<String> named = new ArrayList<>();
        while (m.find()) named.add(m.group(1));
        assertThat(named).as("class names in docs/architecture.md").hasSizeGreaterThan(10);
        for (String name : named)
            assertThat(declared).as("docs/architecture.md names %s", name).contains(name);
        assertThat(doc).as("the new module is shown").contains("`scheduler`");
    }
}
