/**
 * The conductor application (Spring Boot): its configuration record and the wiring of the packages below.
 */
package dev.mooncakej.conductor;
