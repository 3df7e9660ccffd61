package shutdown

// DefaultPolicy returns the policy with the server defaults, for the tests:
// the server builds its policy from its flags (DefaultIdleAfter and
// DefaultMinUptime are their defaults), so no user needs it exported.
func DefaultPolicy() Policy {
	return Policy{IdleAfter: DefaultIdleAfter, MinUptime: DefaultMinUptime}
}
