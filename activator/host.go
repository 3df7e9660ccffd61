package activator

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Target is the Service a request's Host header names.
type Target struct {
	Namespace string
	Service   string
	// Port is the Service port the Host named; 0 when it named none.
	Port int32
}

// String returns "namespace/service", with ":port" when the Host named one.
func (t Target) String() string {
	s := t.Namespace + "/" + t.Service
	if t.Port != 0 {
		s += ":" + strconv.Itoa(int(t.Port))
	}
	return s
}

// Errors ParseHost wraps in a *HostError.
var (
	ErrEmptyHost   = errors.New("empty host")
	ErrBadPort     = errors.New("bad port")
	ErrIPHost      = errors.New("an IP address, not a Service name")
	ErrBadLabel    = errors.New("bad DNS label")
	ErrNoNamespace = errors.New("no namespace, and no default namespace")
	ErrNotAService = errors.New("not a Service name")
)

// HostError is why a Host header names no Service.
type HostError struct {
	Host   string // the Host header as received
	Err    error  // one of the Err... values above
	Detail string // the offending part, when there is one
}

func (e *HostError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("host %q: %v", e.Host, e.Err)
	}
	return fmt.Sprintf("host %q: %v: %s", e.Host, e.Err, e.Detail)
}

func (e *HostError) Unwrap() error { return e.Err }

// ParseHost returns the Service that host (a request's Host header) names,
// in any of its in-cluster forms, with or without ":port":
//
//	svc                          (in defaultNamespace; refused when it is "")
//	svc.ns
//	svc.ns.svc
//	svc.ns.svc.<clusterDomain>   (clusterDomain "" means cluster.local)
//
// Names are case-insensitive and one trailing dot is allowed. Every label
// must be a DNS-1123 label. IP addresses and any other name are refused, so
// the activator can never be pointed at an address of the caller's choosing.
// Errors are *HostError.
func ParseHost(host, defaultNamespace, clusterDomain string) (Target, error) {
	if clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	fail := func(err error, detail string) (Target, error) {
		return Target{}, &HostError{Host: host, Err: err, Detail: detail}
	}
	name, port := host, ""
	if strings.HasPrefix(name, "[") || strings.Count(name, ":") > 1 { // [v6], [v6]:port, v6 (or garbage)
		if _, err := netip.ParseAddr(name); err == nil || name[0] == '[' {
			return fail(ErrIPHost, "")
		}
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		name, port = name[:i], name[i+1:]
	}
	var t Target
	if port != "" || strings.HasSuffix(host, ":") {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return fail(ErrBadPort, strconv.Quote(port))
		}
		t.Port = int32(p)
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return fail(ErrEmptyHost, "")
	}
	if strings.Trim(name, "0123456789.") == "" { // may be an IPv4 address
		if _, err := netip.ParseAddr(name); err == nil {
			return fail(ErrIPHost, "")
		}
	}
	name = strings.ToLower(name)
	var labels [3]string // the first three
	n, after := 0, ""    // after: what follows the third label
	for s := name; ; n++ {
		l, rest, more := strings.Cut(s, ".")
		if !isDNSLabel(l) {
			return fail(ErrBadLabel, strconv.Quote(l))
		}
		if n < len(labels) {
			labels[n] = l
		}
		if n == 2 {
			after = rest
		}
		if !more {
			n++
			break
		}
		s = rest
	}
	switch {
	case n == 1:
		if defaultNamespace == "" {
			return fail(ErrNoNamespace, "")
		}
		t.Service, t.Namespace = labels[0], defaultNamespace
	case n == 2:
		t.Service, t.Namespace = labels[0], labels[1]
	case labels[2] == "svc" && (n == 3 || strings.EqualFold(after, clusterDomain)):
		t.Service, t.Namespace = labels[0], labels[1]
	default:
		return fail(ErrNotAService, "want svc, svc.ns, svc.ns.svc or svc.ns.svc."+clusterDomain)
	}
	return t, nil
}

// isDNSLabel reports whether s is an RFC 1123 label: 1–63 of a-z, 0-9 and
// '-', starting and ending with a letter or digit.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
