/// Room for new clients at `server.max_connections`, made as nginx makes it: for each client
/// waiting to connect, the connection that has waited longest for a request (a keep-alive between
/// requests, or a new one that has sent nothing) is asked to go, found at the front of the
/// worker's `IdleQueue`. An HTTP/1.1 connection is closed (its client loses nothing); an HTTP/2
/// connection is sent GOAWAY with the last stream id it took, and closes once that is written. A
/// connection whose next request is already in the kernel's queue is passed over, one still
/// writing its last answer waits its turn again. Connections with work in flight are left alone;
/// accepting then waits for a close, or for the next sweep.
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

    private enum Standing {
        case idle(Open)
        /// Idle but for its last answer still being written: it may go once that is out.
        case writing
        /// Closed, or no longer waiting since this entry (a newer one stands for it).
        case stale
    }

    /// A client connection begins to wait for a request: its place in the queue, a number no
    /// other wait on this worker has (kept as the connection's `idleTurn`).
    func connectionWaits(slot: Int32, generation: UInt32) -> UInt64 {
        // Compacted before the new entry goes in: until the caller keeps its turn, the
        // connection's earlier entries would pass for current and the new one for stale.
        idleQueue.compact(over: 2 * connectionCount + 64) { if case .stale = standing(of: $0) { false } else { true } }
        lastIdleTurn &+= 1
        idleQueue.append(.init(slot: slot, generation: generation, turn: lastIdleTurn))
        return lastIdleTurn
    }

    private func standing(of e: IdleQueue.Entry) -> Standing {
        switch loop.handler(e.slot, generation: e.generation) {
        case let .client(c)? where c.idleTurn == e.turn:
            let inputEmpty = (c.input?.isEmpty ?? true) && c.transport.isQuiet
            guard c.machine.isIdle(inputEmpty: inputEmpty, outputPending: false) else { return .stale }
            return c.outputPending ? .writing : .idle(.http1(c))
        case let .http2(h)? where h.idleTurn == e.turn:
            guard h.streams.isEmpty && !h.isGoing else { return .stale }
            return h.isIdle ? .idle(.http2(h)) : .writing
        default:
            return .stale
        }
    }

    /// Takes the connection idle longest from the queue and asks it to go; false when none was
    /// found among `budget` live entries (stale ones cost nothing here: each was paid for by its
    /// append). One still writing, or whose socket holds unread bytes (its next request, most
    /// likely), waits its turn again at the back.
    private func askLongestIdleToGo(budget: Int) -> Bool {
        var later: [IdleQueue.Entry] = []
        defer { for e in later { idleQueue.append(e) } }
        var looked = 0
        while looked < budget, let e = idleQueue.popFirst() {
            switch standing(of: e) {
            case .stale:
                continue
            case .writing:
                looked += 1
                later.append(e)
            case let .idle(c):
                looked += 1
                if c.hasUnreadBytes {
                    later.append(e)
                    continue
                }
                c.askToGo()
                return true
            }
        }
        return false
    }

    /// Called with accepting paused at the limit and a client waiting: one idle connection goes.
    func makeRoomForNewConnections() {
        if askLongestIdleToGo(budget: 64) { connectionsShed += 1 }
    }

    /// After a reload: connections beyond a lowered `max_connections` (and not going already)
    /// are asked to go.
    func shedExcessConnections() {
        let h1 = loop.clientConnections(), h2 = loop.http2Connections()
        let going = h1.count { $0.machine.isGoing } + h2.count { $0.isGoing }
        let open = connectionCount, excess = open - going - state.config.server.maxConnections
        guard excess > 0 else { return }
        var asked = 0
        while asked < excess && askLongestIdleToGo(budget: idleQueue.count) { asked += 1 }
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
}
