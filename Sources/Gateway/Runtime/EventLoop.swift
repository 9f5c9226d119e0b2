import CGatewayShims
import Glibc
import Synchronization

/// What a registered descriptor is, switched over in one place (`Worker.dispatch`).
enum LoopHandler {
    /// A listening socket; `tls`: the HTTPS one, whose connections get a TLS transport.
    case listener(Socket, tls: Bool)
    case wakeup
    case client(ClientConnection)
    /// A client connection that became HTTP/2 (HTTP2Connection.swift).
    case http2(HTTP2Connection)
    case upstream(UpstreamConnection)
}

/// One epoll instance, owned by one thread: level-triggered registrations, a generation number
/// packed beside each socket's slot in `epoll_event.data.u64` (events for a closed-and-reused fd are
/// dropped), an eventfd to wake it from other threads, and a timer heap for every deadline.
final class EventLoop {
    private let epfd: Int32
    private let wakeFD: Int32
    private var handlers: [LoopHandler?] = []
    private var generations: [UInt32] = []
    private var interests: [UInt32] = []
    private var timers = TimerHeap()
    private let events: UnsafeMutableRawPointer
    private let maxEvents = 512
    private let eventSize = gw_epoll_event_size()

    /// Work handed in from other threads (worker pool results, shutdown), run on this loop.
    private let inbox = Mutex<[@Sendable () -> Void]>([])
    private let wakePending = Atomic<Bool>(false)

    /// Counts `epoll_wait` calls. Every event handled in one batch was ready before any of the
    /// batch's work began, so an event cannot answer bytes written in the same batch.
    private(set) var batch: UInt64 = 0

    /// Monotonic milliseconds, read once per loop iteration.
    private(set) var now: UInt64 = 0
    /// Unix seconds, read once per loop iteration (token expiry checks).
    private(set) var unixNow: Int64 = 0

    init() throws {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SystemError(call: "epoll_create1", errno: errno) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw SystemError(call: "eventfd", errno: errno) }
        events = .allocate(byteCount: eventSize * maxEvents, alignment: 8)
        updateClock()
        try registerWakeup()
    }

    deinit {
        events.deallocate()
        Syscall.close(wakeFD)
        Syscall.close(epfd)
    }

    func updateClock() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        now = UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
        clock_gettime(CLOCK_REALTIME, &ts)
        unixNow = Int64(ts.tv_sec)
    }

    // MARK: registrations

    /// Registers `socket` with `interest`; returns its generation. Fails (nothing registered)
    /// when the kernel refuses, e.g. out of memory: the caller closes the socket, the loop lives.
    @discardableResult
    func register(_ socket: Socket, interest: Interest, handler: LoopHandler) throws(SystemError) -> UInt32 {
        try add(socket.slot, interest: interest, handler: handler) { socket.epollControl(epfd, EPOLL_CTL_ADD, mask: $0, data: $1) }
    }

    /// The loop's own eventfd, watched for reading.
    private func registerWakeup() throws(SystemError) {
        _ = try add(wakeFD, interest: .read, handler: .wakeup) { gw_epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, $0, $1) }
    }

    /// Files `handler` under `slot` in its next generation once `control(mask, data)` (the
    /// EPOLL_CTL_ADD) succeeds; a refusal leaves the tables as they were.
    private func add(_ slot: Int32, interest: Interest, handler: LoopHandler,
                     control: (UInt32, UInt64) -> Int32) throws(SystemError) -> UInt32 {
        let i = Int(slot)
        if i >= handlers.count {
            let n = max(i + 1, handlers.count * 2, 64)
            handlers.append(contentsOf: repeatElement(nil, count: n - handlers.count))
            generations.append(contentsOf: repeatElement(0, count: n - generations.count))
            interests.append(contentsOf: repeatElement(0, count: n - interests.count))
        }
        let generation = generations[i] &+ 1
        let mask = interest.epollMask
        guard control(mask, UInt64(UInt32(bitPattern: slot)) | UInt64(generation) << 32) == 0 else {
            throw SystemError(call: "epoll_ctl(ADD)", errno: errno)
        }
        generations[i] = generation
        handlers[i] = handler
        interests[i] = mask
        return generation
    }

    /// The slot and its generation, as packed in `epoll_event.data.u64`.
    @inline(__always)
    private func key(_ slot: Int32) -> UInt64 { UInt64(UInt32(bitPattern: slot)) | UInt64(generations[Int(slot)]) << 32 }

    /// Changes what `socket` is watched for, with a syscall only when it changes. Fails when the
    /// kernel refuses; the caller ends the connection, with the reason.
    @inline(__always)
    func setInterest(_ socket: Socket, _ interest: Interest) throws(SystemError) {
        let i = Int(socket.slot)
        let mask = interest.epollMask
        guard interests[i] != mask else { return }
        guard socket.epollControl(epfd, EPOLL_CTL_MOD, mask: mask, data: key(socket.slot)) == 0 else {
            throw SystemError(call: "epoll_ctl(MOD)", errno: errno)
        }
        interests[i] = mask
    }

    /// Forgets a registered socket and closes it: every socket a loop watches is closed here, so
    /// none is closed while still watched. Its pending events and timers become stale.
    func close(_ socket: Socket) {
        let i = Int(socket.slot)
        if i < handlers.count, handlers[i] != nil {
            _ = socket.epollControl(epfd, EPOLL_CTL_DEL, mask: 0, data: 0)
            handlers[i] = nil
            generations[i] &+= 1
            interests[i] = 0
        }
        socket.close()
    }

    /// The generation `slot` has now (0 for a slot never registered).
    @inline(__always)
    func generation(of slot: Int32) -> UInt32 { Int(slot) < generations.count ? generations[Int(slot)] : 0 }

    @inline(__always)
    func handler(_ slot: Int32, generation: UInt32) -> LoopHandler? {
        let i = Int(slot)
        guard i < handlers.count, generations[i] == generation else { return nil }
        return handlers[i]
    }

    /// Every registered HTTP/1.1 client connection (shutdown and the once-a-second sweep: it
    /// walks the whole table).
    func clientConnections() -> [ClientConnection] {
        handlers.compactMap { if case let .client(c)? = $0 { return c } else { return nil } }
    }

    /// Every registered upstream connection (a scrape counts them: it walks the whole table).
    func upstreamConnections() -> [UpstreamConnection] {
        handlers.compactMap { if case let .upstream(u)? = $0 { return u } else { return nil } }
    }

    /// Every registered HTTP/2 client connection (as `clientConnections`).
    func http2Connections() -> [HTTP2Connection] {
        handlers.compactMap { if case let .http2(c)? = $0 { return c } else { return nil } }
    }

    /// Files `handler` in place of what `slot` holds in this generation (a connection that
    /// changes protocol keeps its socket, its registration and its timers).
    func replaceHandler(_ slot: Int32, generation: UInt32, with handler: LoopHandler) {
        precondition(self.handler(slot, generation: generation) != nil, "replacing a handler that is not registered")
        handlers[Int(slot)] = handler
    }

    // MARK: timers

    func schedule(at time: UInt64, slot: Int32, generation: UInt32) {
        timers.push(.init(time: time, slot: slot, generation: generation))
    }

    /// The next timer entry due now, if any.
    @inline(__always)
    func popDueTimer() -> TimerHeap.Entry? { timers.popDue(now) }

    var timerCount: Int { timers.count }

    // MARK: waiting

    /// Waits for events (at most until the earliest timer or `maxWaitMs`), then calls `body`
    /// for each with its handler; stale events are skipped.
    @inline(__always)
    func wait(maxWaitMs: Int32, _ body: (LoopHandler, IOEvents) -> Void) {
        var timeout = maxWaitMs
        if let t = timers.earliest {
            timeout = t <= now ? 0 : Int32(min(UInt64(maxWaitMs), t - now))
        }
        let n = gw_epoll_wait(epfd, events, Int32(maxEvents), timeout)
        batch &+= 1
        updateClock()
        guard n > 0 else { return }
        for k in 0..<Int(n) {
            let data = gw_epoll_event_data(events, Int32(k))
            let slot = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
            let gen = UInt32(truncatingIfNeeded: data >> 32)
            guard let h = handler(slot, generation: gen) else { continue }
            body(h, IOEvents(epollBits: gw_epoll_event_events(events, Int32(k))))
        }
    }

    // MARK: cross-thread

    /// Runs `task` on this loop's thread soon. Safe from any thread.
    func execute(_ task: @escaping @Sendable () -> Void) {
        inbox.withLock { $0.append(task) }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    /// Drains the eventfd and runs queued tasks (called on the loop thread for `.wakeup`).
    func runInbox() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeFD, &value, 8)
        wakePending.store(false, ordering: .releasing)
        let tasks = inbox.withLock { q -> [@Sendable () -> Void] in
            defer { q.removeAll(keepingCapacity: true) }
            return q
        }
        for t in tasks { t() }
    }
}
