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
    public Member {
        if (!"prefill".equals(role) && !"decode".equals(role))
            throw new IllegalArgumentException("member role '" + role + "': expected prefill or decode");
        if (name == null || !name.matches("[A-Za-z0-9._-]{1,64}"))
            throw new IllegalArgumentException("member name '" + name + "': expected 1-64 of [A-Za-z0-9._-]");
        if (url == null || !url.matches("https?://[^/\\s]+"))
            throw new IllegalArgumentException("member url '" + url + "': expected http://host:port");
    }
}
