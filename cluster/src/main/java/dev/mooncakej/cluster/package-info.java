/**
 * Coordination on etcd (jetcd): worker registration under kept-alive leases, the membership watch and the
 * conductors' leader election. Plain Java.
 */
package dev.mooncakej.cluster;
