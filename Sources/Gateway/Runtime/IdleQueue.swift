/// Client connections in the order they began to wait for a request (nginx's reusable-connection
/// queue): a connection is appended each time it starts waiting (accepted, answered, its last
/// HTTP/2 stream closed), and `max_connections` takes from the front the one idle longest. An
/// entry names the connection by slot and generation and the number of its wait (its turn): one
/// whose connection has gone, or has begun waiting again since (a newer entry stands for it), is
/// stale and dropped when met. Finding room so costs O(1) amortized, never a walk over every
/// connection, however many connect at the limit.
struct IdleQueue {
    struct Entry: Equatable {
        var slot: Int32
        var generation: UInt32
        /// The wait this entry stands for (`Worker.connectionWaits`): the connection's current
        /// one, or an earlier, stale one.
        var turn: UInt64
    }

    private var entries: [Entry] = []
    private var head = 0

    /// Entries held, stale ones included.
    var count: Int { entries.count - head }

    mutating func append(_ entry: Entry) {
        entries.append(entry)
    }

    mutating func popFirst() -> Entry? {
        guard head < entries.count else { return nil }
        let e = entries[head]
        head += 1
        if head >= 64 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return e
    }

    /// Drops the stale entries (`isCurrent` false) when the queue holds more than `limit`:
    /// connections that keep being answered and are never taken would otherwise make it grow
    /// without end. Amortized O(1) per append when `limit` is a multiple of the live entries.
    mutating func compact(over limit: Int, isCurrent: (Entry) -> Bool) {
        guard count > limit else { return }
        entries = entries[head...].filter(isCurrent)
        head = 0
    }
}
