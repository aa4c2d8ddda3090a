"""Layer 4: measuring a world against reality: lockstep fidelity, coherence, real-frame
indexes, object locators and open-loop exploit probes."""
