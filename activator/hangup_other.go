//go:build !linux

package activator

import "net"

// canPollHangup is false: a held HTTP/1.1 request with an unread body
// whose client went away is noticed at its hold timeout.
const canPollHangup = false

func peerClosed(net.Conn) bool { return false }
