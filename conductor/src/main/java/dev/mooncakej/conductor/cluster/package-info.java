/**
 * The conductor in an etcd cluster: watching members, campaigning for leadership, and the internal routes
 * workers push to (prefix-cache events, decode load).
 */
package dev.mooncakej.conductor.cluster;
