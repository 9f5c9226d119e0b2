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
            guard connection.sendAll(Array("serving\n".utf8)),
                  let line = AdminSocket.readLine(connection, timeoutMs: 10_000) else { return nil }
            connection.close()
            return String(decoding: line, as: UTF8.self)
        }
    }

    /// Asks the process serving `adminPath` for its listeners; they must listen on `plainPort`
    /// (and `tlsPort`, for the HTTPS ones), or the takeover is refused and nothing changes.
    static func request(adminPath: String, plainPort: UInt16, tlsPort: UInt16?) throws -> Handover {
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
        let fits = plain.allSatisfy { $0.isTCPListener(port: plainPort) }
            && tls.allSatisfy { tlsPort.map($0.isTCPListener(port:)) ?? true }
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
        let listeners = listenerSockets()
        let plain = listeners.filter { !$0.tls }.map(\.socket), tls = listeners.filter(\.tls).map(\.socket)
        guard !plain.isEmpty, client.send("ok plain=\(plain.count) tls=\(tls.count)\n", passing: plain + tls) else {
            AdminSocket.write("error: no listeners to hand over\n", to: client)
            return
        }
        guard let line = AdminSocket.readLine(client, timeoutMs: 30_000), String(decoding: line, as: UTF8.self) == "serving" else {
            log.submit("takeover: the new process did not confirm; this one goes on serving")
            return
        }
        AdminSocket.write("draining\n", to: client)
        handoverConfirmed.store(true, ordering: .relaxed)
        // The signal loop drains (Server.run): woken at once.
        kill(getpid(), SIGUSR2)
    }

    /// Every worker's listeners (each copies its list on its own loop; a second at most).
    func listenerSockets() -> [(socket: Socket, tls: Bool)] {
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
        for _ in workers { _ = done.wait(timeout: .now() + .seconds(1)) }
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
                    if tls, let address = currentState().tlsListen { try worker.adopt(Socket.listen(address), tls: true) }
                    if !tls { try worker.adopt(Socket.listen(currentState().listen), tls: false) }
                }
            }
        }
    }
}
