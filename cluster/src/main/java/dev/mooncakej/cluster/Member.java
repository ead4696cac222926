package dev.mooncakej.cluster;

/**
 * A worker as the cluster sees it, registered in etcd under {@code <prefix>workers/<role>/<name>}.
 *
 * @param role     {@code prefill} or {@code decode}
 * @param name     unique in the cluster (the worker's transfer segment name)
 * @param url      its internal API, e.g. {@code http://10.0.0.5:8100}
 * @param model    the model it serves
 * @param capacityBlocks KV blocks of its pool
 */
public record Member(String role, String name, String url, String model, int capacityBlocks) {
    private static final String PLAIN_URL = "https?://([A-Za-z0-9.-]{1,253}|\\[[0-9A-Fa-f:.]{2,45}]):[0-9]{1,5}";

    /**
     * Whether a URL read from etcd (a member's, the leader's) is a plain http://host:port that calls
     * with the cluster credential may go to.
     */
    public static boolean plainUrl(String url) {
        if (url == null || !url.matches(PLAIN_URL)) return false;
        int port = Integer.parseInt(url.substring(url.lastIndexOf(':') + 1));
        return port >= 1 && port <= 65535;
    }

    public Member {
        if (!"prefill".equals(role) && !"decode".equals(role))
            throw new IllegalArgumentException("member role '" + role + "': expected prefill or decode");
        if (name == null || !name.matches("[A-Za-z0-9._-]{1,64}"))
            throw new IllegalArgumentException("member name '" + name + "': expected 1-64 of [A-Za-z0-9._-]");
        // read back from etcd, so checked like any input: a plain host (name, IPv4 or [IPv6]) and a port,
        // nothing else (no user info, path, query or fragment a forged entry could use to redirect calls)
        if (!plainUrl(url))
            throw new IllegalArgumentException("member url '" + url + "': expected http://host:port, port 1..65535");
    }
}
