/// Room for new clients at `server.max_connections`, made as nginx makes it: connections that sit
/// idle between requests are asked to go, the longest idle first. An HTTP/1.1 keep-alive
/// connection is closed (its client reconnects at no loss); an HTTP/2 connection is sent GOAWAY
/// with the last stream id it took, and closes once that is written. Connections with work in
/// flight are left alone, and accepting pauses until one closes.
///
/// A reload that lowers `max_connections` below what is open asks the excess to go: idle ones
/// first, then busy ones, which finish what they are doing (HTTP/2: GOAWAY, open streams
/// complete; HTTP/1.1: the current answer says `Connection: close`).
extension Worker {
    private enum Open {
        case http1(ClientConnection)
        case http2(HTTP2Connection)
    }

    /// Called with accepting paused at the limit: an eighth of the idle connections (at least
    /// one, at most 32) go.
    func makeRoomForNewConnections() {
        let idle = idleConnections()
        connectionsShed += askToGo(idle, max(1, min(32, idle.count / 8)))
    }

    /// After a reload: connections beyond a lowered `max_connections` are asked to go.
    func shedExcessConnections() {
        let open = connectionCount, excess = open - state.config.server.maxConnections
        guard excess > 0 else { return }
        let idle = idleConnections()
        var asked = askToGo(idle, excess)
        if asked < excess {
            for c in loop.clientConnections() where asked < excess && !c.machine.isClosed
                && !c.machine.isIdleKeepAlive(inputEmpty: c.input?.isEmpty ?? true, outputPending: c.outputPending) {
                c.drain()
                asked += 1
            }
            for h in loop.http2Connections() where asked < excess && !h.isGoing && !h.isIdle {
                h.drain()
                asked += 1
            }
        }
        logEvent("reload: max_connections \(state.config.server.maxConnections) is below the \(open) open; \(asked) asked to go")
    }

    /// Idle connections, the longest idle (the earliest idle deadline) first.
    private func idleConnections() -> [Open] {
        var idle: [(deadline: UInt64, connection: Open)] = []
        for c in loop.clientConnections() where c.machine.isIdleKeepAlive(inputEmpty: c.input?.isEmpty ?? true, outputPending: c.outputPending) {
            idle.append((c.deadline, .http1(c)))
        }
        for h in loop.http2Connections() where h.isIdle {
            idle.append((h.deadline, .http2(h)))
        }
        idle.sort { $0.deadline < $1.deadline }
        return idle.map(\.connection)
    }

    private func askToGo(_ connections: [Open], _ count: Int) -> Int {
        let chosen = connections.prefix(count)
        for c in chosen {
            switch c {
            case let .http1(c): c.drain()
            case let .http2(h): h.drain()
            }
        }
        return chosen.count
    }
}
