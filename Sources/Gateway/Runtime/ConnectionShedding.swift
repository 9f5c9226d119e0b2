/// Room for new clients at `server.max_connections`, made as nginx makes it: connections that sit
/// idle waiting for a request (a keep-alive between requests, or a new one that has sent
/// nothing) are asked to go, the longest idle first. An HTTP/1.1 connection is closed (its client
/// loses nothing); an HTTP/2 connection is sent GOAWAY with the last stream id it took, and
/// closes once that is written. A connection whose next request is already in the kernel's queue
/// is passed over. Connections with work in flight are left alone; accepting then waits for a
/// close, or for the next sweep to find one idle.
///
/// A reload that lowers `max_connections` below what is open asks the excess to go: idle ones
/// first, then busy ones once they have finished what they are doing (HTTP/2: GOAWAY, open
/// streams complete; HTTP/1.1: the request being read or served is answered with `Connection:
/// close`). Tunnels are never cut for it.
extension Worker {
    private enum Open {
        case http1(ClientConnection)
        case http2(HTTP2Connection)

        var hasUnreadBytes: Bool {
            switch self {
            case let .http1(c): return c.socket.hasUnreadBytes()
            case let .http2(h): return h.socket.hasUnreadBytes()
            }
        }

        func askToGo() {
            switch self {
            case let .http1(c): c.drain()
            case let .http2(h): h.drain()
            }
        }
    }

    /// Called with accepting paused at the limit and a client waiting: an eighth of the idle
    /// connections (at least one, at most 32) go.
    func makeRoomForNewConnections() {
        let idle = idleConnections()
        connectionsShed += askToGo(idle, max(1, min(32, idle.count / 8)))
    }

    /// After a reload: connections beyond a lowered `max_connections` (and not going already)
    /// are asked to go.
    func shedExcessConnections() {
        let h1 = loop.clientConnections(), h2 = loop.http2Connections()
        let going = h1.count { $0.machine.isGoing } + h2.count { $0.isGoing }
        let open = connectionCount, excess = open - going - state.config.server.maxConnections
        guard excess > 0 else { return }
        var asked = askToGo(idleConnections(), excess)
        for c in h1 where asked < excess && !c.machine.isClosed && !c.machine.isGoing {
            if case .tunnel = c.machine.state { continue }
            c.drain()
            asked += 1
        }
        for h in h2 where asked < excess && !h.isGoing {
            h.drain()
            asked += 1
        }
        logEvent("reload: max_connections \(state.config.server.maxConnections) is below the \(open) open; \(asked) more asked to go")
    }

    /// Idle connections, the longest idle first.
    private func idleConnections() -> [Open] {
        var idle: [(since: UInt64, connection: Open)] = []
        for c in loop.clientConnections()
        where c.machine.isIdle(inputEmpty: (c.input?.isEmpty ?? true) && !c.transport.hasBufferedInput, outputPending: c.outputPending) {
            idle.append((c.idleSince, .http1(c)))
        }
        for h in loop.http2Connections() where h.isIdle {
            idle.append((h.idleSince, .http2(h)))
        }
        idle.sort { $0.since < $1.since }
        return idle.map(\.connection)
    }

    /// Asks up to `count` of `connections` to go, in order, passing over those whose next
    /// request has arrived unread; how many were asked.
    private func askToGo(_ connections: [Open], _ count: Int) -> Int {
        var asked = 0
        for c in connections where asked < count && !c.hasUnreadBytes {
            c.askToGo()
            asked += 1
        }
        return asked
    }
}
