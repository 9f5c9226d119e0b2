/// A binary min-heap of deadlines for one loop.
///
/// Entries are (time, slot, generation). A connection keeps one current deadline and pushes an
/// entry only when its deadline moves earlier than the entry it already has; later moves are
/// free (the entry fires, the owner sees its real deadline is later and re-arms). Stale entries
/// (closed sockets, or slots re-used) are recognised by their generation and dropped when they surface, so
/// the heap holds about one entry per connection, whatever the request rate.
struct TimerHeap {
    struct Entry {
        var time: UInt64
        var slot: Int32
        var generation: UInt32
    }

    private var heap: [Entry] = []

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var earliest: UInt64? { heap.first?.time }

    mutating func push(_ e: Entry) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].time <= heap[i].time { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    /// Removes and returns the earliest entry due at or before `now`.
    mutating func popDue(_ now: UInt64) -> Entry? {
        guard let first = heap.first, first.time <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && heap[l].time < heap[m].time { m = l }
                if r < n && heap[r].time < heap[m].time { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}
