package dev.mooncakej.system;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.CompositeArchRule;
import dev.mooncakej.archprobe.a.A;
import dev.mooncakej.archprobe.b.B;
import dev.mooncakej.decode.archprobe.DecodeThing;
import dev.mooncakej.engine.archprobe.UsesAnApp;
import dev.mooncakej.prefill.archprobe.UsesAnotherApp;
import dev.mooncakej.scheduler.archprobe.SpringInTheCore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.archprobe.SpringBean;

/**
 * The layering rules the build enforces (issue 25), over the compiled main classes of every module
 * ({@code <module>/target/classes}): Spring only in the three apps and web-edge; nothing depends on
 * an app (nor one app on another); the plain-Java cores (scheduler, kvstore, engine, kvtransfer, worker runtime)
 * depend on no app, no web edge, no Spring; no package cycles. Each rule is also shown to fail on a
 * probe that breaks it (classes in this module's test sources, never part of the product), as the
 * style gate checks itself.
 */
class ArchitectureTest {
    static final String[] APPS = {"dev.mooncakej.conductor..", "dev.mooncakej.prefill..", "dev.mooncakej.decode.."};
    static final String WEB_EDGE = "dev.mooncakej.web..";
    static final String[] CORES = {
        "dev.mooncakej.scheduler..",
        "dev.mooncakej.kvstore..",
        "dev.mooncakej.engine..",
        "dev.mooncakej.kvtransfer..",
        "dev.mooncakej.worker.."
    };
    static final String SPRING = "org.springframework..";

    static String[] and(String[] a, String... b) {
        return Stream.concat(Stream.of(a), Stream.of(b)).toArray(String[]::new);
    }

    static ArchRule springAtTheEdge() {
        return noClasses()
                .that()
                .resideOutsideOfPackages(and(APPS, WEB_EDGE))
                .should()
                .dependOnClassesThat()
                .resideInAPackage(SPRING)
                .as("Spring lives in the three apps and web-edge only");
    }

    static ArchRule nothingDependsOnAnApp() {
        List<ArchRule> rules = new ArrayList<>();
        for (String app : APPS)
            rules.add(noClasses()
                    .that()
                    .resideOutsideOfPackage(app)
                    .should()
                    .dependOnClassesThat()
                    .resideInAPackage(app)
                    .as("nothing outside " + app + " depends on it"));
        CompositeArchRule all = CompositeArchRule.of(rules.get(0));
        for (int i = 1; i < rules.size(); i++) all = all.and(rules.get(i));
        return all;
    }

    static ArchRule coresArePlainJava() {
        return noClasses()
                .that()
                .resideInAnyPackage(CORES)
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage(and(APPS, WEB_EDGE, SPRING))
                .as("scheduler, kvstore, engine and kvtransfer are plain Java: no app, no web edge, no Spring");
    }

    static ArchRule noPackageCycles() {
        return slices().matching("dev.mooncakej.(**)").should().beFreeOfCycles().as("no package cycles");
    }

    static JavaClasses product;

    /** Every module's main classes, as the build left them (a module not compiled yet fails here, by name). */
    @BeforeAll
    static void importTheProduct() throws IOException {
        Path root = LocalCluster.projectRoot();
        List<Path> dirs = new ArrayList<>();
        try (Stream<Path> modules = Files.list(root)) {
            for (Path m : modules.sorted().toList()) {
                if (!Files.isDirectory(m.resolve("src/main/java"))) continue;
                Path classes = m.resolve("target/classes");
                assertThat(classes)
                        .as("module " + m.getFileName() + " is not compiled (run ./mooncakej build)")
                        .isDirectory();
                dirs.add(classes);
            }
        }
        assertThat(dirs).as("modules under " + root).hasSizeGreaterThanOrEqualTo(10);
        product = new ClassFileImporter().importPaths(dirs);
        assertThat(product.containPackage("dev.mooncakej.conductor.request")).isTrue();
        assertThat(product.containPackage("dev.mooncakej.scheduler")).isTrue();
    }

    @Test
    void theProductKeepsEveryRule() {
        for (ArchRule r : List.of(springAtTheEdge(), nothingDependsOnAnApp(), coresArePlainJava(), noPackageCycles()))
            r.check(product);
    }

    @Test
    void eachRuleFailsOnAProbeThatBreaksIt() {
        JavaClasses probes = new ClassFileImporter()
                .importClasses(
                        SpringBean.class,
                        SpringInTheCore.class,
                        DecodeThing.class,
                        UsesAnApp.class,
                        UsesAnotherApp.class,
                        A.class,
                        B.class);
        Map<ArchRule, String> caught = Map.of(
                springAtTheEdge(), SpringInTheCore.class.getName(),
                nothingDependsOnAnApp(), UsesAnotherApp.class.getName(),
                coresArePlainJava(), UsesAnApp.class.getName(),
                noPackageCycles(), "archprobe.a");
        caught.forEach((rule, culprit) -> assertThatThrownBy(() -> rule.check(probes))
                .as(rule.getDescription())
                .isInstanceOf(AssertionError.class)
                .hasMessageContaining(culprit));
        // and the probes alone are what breaks them: the rules hold on the probes' innocent classes
        JavaClasses innocent = new ClassFileImporter().importClasses(SpringBean.class, DecodeThing.class);
        for (ArchRule r : caught.keySet()) r.allowEmptyShould(true).check(innocent);
    }
}
