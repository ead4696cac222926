/**
 * The common web edge of the three apps: {@link dev.mooncakej.web.InternalPlaneFilter} (every
 * {@code /internal/*} route and the route listing need the cluster credential) and
 * {@link dev.mooncakej.web.WebEdgeAutoConfiguration} (the credential and the cluster settings, bound
 * once per service).
 */
package dev.mooncakej.web;
