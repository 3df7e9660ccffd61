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
//   - held requests the moment the first endpoint is ready (the activator
//     waits on Endpoints.Ready's change channel, it does not poll), in
//     arrival order, at most Config.WakeConcurrency per Service on their way
//     upstream at once, round robin over the ready addresses.
//
// A held request is demand: Demand.Pending hears of every change of a
// workload's count, and Holding answers it for the state writer.
//
// Limits: an HTTP/1.1 client that goes away while its request is held is
// noticed at once only when the request has no body (or its body was read);
// Go's server does not read past an unread body, so such a request leaves
// at its hold timeout. HTTP/2 clients are noticed at once. A request whose
// every ready address refused the connection waits for the addresses to
// change (up to its hold timeout) without counting as held. Raw TCP is not
// held. X-Forwarded-For and Forwarded extend what the client sent: the
// activator is one more hop inside the cluster, and the client is trusted
// as much as it would be without it.
package activator
