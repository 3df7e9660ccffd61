package shutdown_test

import (
	"fmt"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

func ExamplePolicy_Decide() {
	o, err := shutdown.ParseAnnotations(map[string]string{
		"ebb.dev/idle-after": "30m",
		"ebb.dev/keep-awake": "0 8 * * 1-5 for 12h in Europe/Berlin",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := shutdown.Resolve(shutdown.DefaultPolicy(), 0, o)

	// Saturday 28 March 2026, last request at 11:20 UTC.
	lastActive := time.Date(2026, 3, 28, 11, 20, 0, 0, time.UTC)
	s := shutdown.State{Known: true, Value: 0, Activation: 0, LastActive: lastActive}
	for _, now := range []time.Time{
		lastActive.Add(4 * time.Minute),
		lastActive.Add(47 * time.Minute),
		time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC), // Monday, 09:00 in Berlin
	} {
		d := p.Decide(s, now)
		fmt.Printf("%s until %s\n", d, d.Until.Format(time.RFC3339))
	}
	// Output:
	// active: last active 4m ago, idle after 30m until 2026-03-28T11:50:00Z
	// idle: idle for 47m (idle after 30m) until 2026-03-30T08:00:00+02:00
	// active: keep-awake window "0 8 * * 1-5 for 12h in Europe/Berlin" until 2026-03-30T20:00:00+02:00
}
