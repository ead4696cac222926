package dev.mooncakej.kvtransfer.spi;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.Set;

/**
 * The transports on the class path, by name: every {@link TransportProvider} listed in a {@code
 * META-INF/services} file. The engine opens the configured ones through it; configuration checks names
 * against it.
 */
public final class Transports {
    private static final Map<String, TransportProvider> PROVIDERS = load();

    private Transports() {}

    private static Map<String, TransportProvider> load() {
        Map<String, TransportProvider> m = new LinkedHashMap<>();
        for (TransportProvider p : ServiceLoader.load(TransportProvider.class, Transports.class.getClassLoader())) {
            TransportProvider old = m.putIfAbsent(p.name(), p);
            if (old != null && old.getClass() != p.getClass())
                throw new IllegalStateException("two transports named '" + p.name() + "': "
                        + old.getClass().getName() + " and " + p.getClass().getName());
        }
        return Collections.unmodifiableMap(m);
    }

    /** The names of the transports available. */
    public static Set<String> names() {
        return PROVIDERS.keySet();
    }

    /** The provider of a transport, or an error naming the ones there are. */
    public static TransportProvider provider(String name) {
        TransportProvider p = PROVIDERS.get(name);
        if (p == null)
            throw new IllegalArgumentException("transfer transport '" + name + "': expected one of " + names());
        return p;
    }
}
