import Dispatch
import Glibc
import Synchronization

/// An upgrade without dropping a connection (`gateway run --takeover`, `gateway upgrade`). The
/// new process asks the running one, over its admin socket, for its listening sockets; they come
/// across with SCM_RIGHTS, so both processes hold the very sockets the kernel queues connections
/// on, and no connection attempt is refused or reset while they change hands. The new process
/// serves on them, says `serving`, and only then does the old one stop accepting and drain:
/// requests in flight finish, HTTP/2 connections get GOAWAY, and an idle keep-alive connection is
/// not cut (its client may be sending on it at that moment): its next request is answered with
/// `Connection: close`, and it is closed only at `server.shutdown_timeout`.
///
///     new → old   takeover
///     old → new   ok plain=<n> tls=<m>            (the n + m listeners attached)
///     new → old   serving                          (its workers accept on them)
///     old → new   draining
enum Takeover {
    /// The new process's side, once the listeners have come.
    struct Handover {
        let connection: Socket
        let plain: [Socket]
        let tls: [Socket]

        /// Tells the old process that this one serves; its answer ("draining"), or nil.
        func confirmServing() -> String? {
            defer { connection.close() }
            guard connection.sendAll(Array("serving\n".utf8)),
                  let line = AdminSocket.readLine(connection, timeoutMs: 10_000) else { return nil }
            return String(decoding: line, as: UTF8.self)
        }
    }

    /// Asks the process serving `adminPath` for its listeners; they must listen on `plainPort`
    /// (and `tlsPort`, for the HTTPS ones), or the takeover is refused and nothing changes.
    static func request(adminPath: String, plain plainAddress: SocketAddress, tls tlsAddress: SocketAddress?) throws -> Handover {
        let connection: Socket
        do {
            connection = try Socket.connectUnix(adminPath, timeoutSeconds: 10)
        } catch {
            throw StartupError("takeover: no gateway answers on \(adminPath) (\(error)); start without --takeover")
        }
        guard connection.sendAll(Array("takeover\n".utf8)),
              let (text, sockets) = connection.receivePassed(maxSockets: 250, timeoutMs: 10_000) else {
            connection.close()
            throw StartupError("takeover: the running gateway did not hand its listeners over")
        }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        func count(_ name: String) -> Int? { words.first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) } }
        guard words.first == "ok", let p = count("plain"), let t = count("tls"), p + t == sockets.count else {
            for s in sockets { s.close() }
            connection.close()
            throw StartupError("takeover refused by the running gateway: \(text.trimmingCharacters(in: .newlines))")
        }
        let plain = Array(sockets.prefix(p)), tls = Array(sockets.suffix(t))
        // Exactly the configured addresses (family, address, port): a port alone would let a
        // configuration narrowed from 0.0.0.0 to loopback go on serving the world.
        let fits = plain.allSatisfy { $0.isTCPListener(on: plainAddress) }
            && tls.allSatisfy { tlsAddress.map($0.isTCPListener(on:)) ?? true }
        guard fits, !plain.isEmpty else {
            for s in sockets { s.close() }
            connection.close()
            throw StartupError("takeover: the running gateway listens elsewhere than server.listen / tls.address say; restart instead")
        }
        return Handover(connection: connection, plain: plain, tls: tls)
    }

    /// Who takes which handed-over listener: listener i goes to worker i modulo their number
    /// (none is closed: a closed one would reset the connections queued on it); a worker left
    /// without one opens its own, which joins the same SO_REUSEPORT group.
    static func assign(_ count: Int, workers: Int) -> [[Int]] {
        var plan = Array(repeating: [Int](), count: workers)
        for i in 0..<count { plan[i % workers].append(i) }
        return plan
    }
}

extension Server {
    /// The old process's side (an admin connection said `takeover`): hands the listeners over,
    /// waits for `serving`, then drains as the type's comment says. Nothing changes when the new
    /// process does not confirm.
    func handOver(to client: Socket) {
        // One takeover at a time, by a process of this user; never after one was confirmed.
        guard let peer = client.peerCredentials, peer.uid == geteuid() else {
            AdminSocket.write("error: a takeover must come from the gateway's own user\n", to: client)
            return
        }
        guard !handoverConfirmed.load(ordering: .relaxed), !handoverBusy.exchange(true, ordering: .acquiring) else {
            AdminSocket.write("error: a takeover is already under way\n", to: client)
            return
        }
        defer { if !handoverConfirmed.load(ordering: .relaxed) { handoverBusy.store(false, ordering: .releasing) } }
        // Every worker's listeners, or none: one left behind would be closed with its queue.
        guard let listeners = listenerSockets() else {
            AdminSocket.write("error: a worker did not answer; try again\n", to: client)
            return
        }
        let plain = listeners.filter { !$0.tls }.map(\.socket), tls = listeners.filter(\.tls).map(\.socket)
        guard !plain.isEmpty, client.send("ok plain=\(plain.count) tls=\(tls.count)\n", passing: plain + tls) else {
            AdminSocket.write("error: no listeners to hand over\n", to: client)
            return
        }
        guard let line = AdminSocket.readLine(client, timeoutMs: 30_000), String(decoding: line, as: UTF8.self) == "serving" else {
            log.submit("takeover: the new process did not confirm; this one goes on serving")
            return
        }
        successorPID.store(peer.pid, ordering: .relaxed)
        handoverConfirmed.store(true, ordering: .relaxed)
        AdminSocket.write("draining\n", to: client)
        // The signal loop drains (Server.run): woken at once.
        kill(getpid(), SIGUSR2)
    }

    /// After a handover: when the successor has died while this process still drains, this
    /// one takes the traffic back (accepting again, its admin socket at the path again).
    func watchSuccessor(adminPath: String) {
        let pid = successorPID.load(ordering: .relaxed)
        guard pid > 0, kill(pid, 0) != 0, errno == ESRCH, !successorLost.exchange(true, ordering: .relaxed) else { return }
        log.submit("takeover: the process that took over (pid \(pid)) is gone; serving again")
        for w in workers {
            let box = WorkerBox(w)
            w.loop.execute { box.worker.resumeServing() }
        }
        let admin = AdminSocket(path: adminPath, server: self)
        do { try admin.start() } catch { log.submit("warning: \(error)") }
        notifier.send("READY=1\nSTATUS=serving again")
    }

    /// Every worker's listeners (each copies its list on its own loop; a second at most), or
    /// nil when a worker did not answer.
    func listenerSockets() -> [(socket: Socket, tls: Bool)]? {
        let found = Mutex<[(socket: Socket, tls: Bool)]>([])
        let done = DispatchSemaphore(value: 0)
        for w in workers {
            let box = WorkerBox(w)
            w.loop.execute {
                let mine = box.worker.listeners
                found.withLock { $0 += mine }
                done.signal()
            }
        }
        let deadline = DispatchTime.now() + .seconds(1)
        for _ in workers { guard done.wait(timeout: deadline) == .success else { return nil } }
        return found.withLock { $0 }
    }

    /// The new process's start: the listeners handed over go to the workers (`Takeover.assign`),
    /// and a worker left without one of a kind opens its own.
    func adoptListeners(_ handover: Takeover.Handover, tlsWanted: Bool) throws {
        for (plan, sockets, tls) in [(Takeover.assign(handover.plain.count, workers: workers.count), handover.plain, false),
                                     (Takeover.assign(handover.tls.count, workers: workers.count), handover.tls, true)] {
            for (i, worker) in workers.enumerated() {
                if tls && !tlsWanted {
                    // HTTPS turned off in the new configuration: its listeners are not served.
                    for j in plan[i] { sockets[j].close() }
                    continue
                }
                for j in plan[i] { try worker.adopt(sockets[j], tls: tls) }
                if plan[i].isEmpty && (!tls || tlsWanted) {
                    // An address of its own (HTTPS turned on): it must not join another
                    // program's SO_REUSEPORT group there.
                    guard let address = tls ? currentState().tlsListen : currentState().listen else { continue }
                    if sockets.isEmpty && Readiness.reachable(address) {
                        throw StartupError("\(tls ? "tls.address" : "server.listen") is already in use by another process")
                    }
                    try worker.adopt(Socket.listen(address), tls: tls)
                }
            }
        }
    }
}
