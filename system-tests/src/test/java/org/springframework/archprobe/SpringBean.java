package org.springframework.archprobe;

/** Architecture probe: stands for any Spring class (ArchitectureTest checks that its rules catch a use of it). */
public final class SpringBean {
    public int value;
}
