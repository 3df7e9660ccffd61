// Package activator is the request-holding proxy that stands in front of a
// workload at zero: it resolves a request's Host to a Service, forwards at
// once to the Service's ready endpoints, and otherwise holds the request
// (bounded, timed, reported as demand) until the first endpoint is ready.
//
// The cluster comes in through the Endpoints interface (the kube edge
// implements it from Services and EndpointSlices); demand goes out through
// Demand (the scaler counts held requests as activity). The Activator is an
// http.Handler; serve it with Server, which speaks HTTP/1.1 and HTTP/2
// over cleartext (h2c), so gRPC clients reach it too.
//
// What it forwards, and how:
//   - only to addresses Endpoints.Ready returned for the Service it resolved
//     from the Host header: never an open proxy;
//   - HTTP/1.1 requests over HTTP/1.1, HTTP/2 requests (gRPC among them)
//     over h2c, with trailers; WebSocket and other upgrades; responses
//     flushed as they come (Server-Sent Events, token streams);
//   - bodies streamed, never buffered whole; each request sent upstream at
//     most once, unless its connection was refused before a byte was written;
//   - held requests in arrival order, at most Config.WakeConcurrency per
//     Service at a time while they start, spread over the ready addresses.
//
// Limits: an HTTP/1.1 client that goes away while its request is held is
// noticed at once only when the request has no body (or its body was read);
// Go's server does not read past an unread body. HTTP/2 clients are noticed
// at once. Raw TCP is not held.
package activator
