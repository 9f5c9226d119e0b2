import CGatewayShims
import Foundation
import Glibc
import Synchronization
import TokenCore

/// `gateway run`: loads the configuration and keys, starts one worker thread per core (each
/// with its own loop and listener), then waits on a signalfd: SIGHUP reloads, SIGTERM/SIGINT
/// drain and exit 0. Nothing here is on a request path.
final class Server: @unchecked Sendable {
    let configPath: String
    let environment: [String: String]
    let log: LogWriter
    private(set) var workers: [Worker] = []
    private var threads: [pthread_t] = []
    private var state: GatewayState
    let revocations = RevocationSet()
    let startedAt = Int64(Date().timeIntervalSince1970)
    private let instanceID = Crypto.uuidV4()
    private let throttle: LoginThrottle
    private let blocking = BlockingPool(threads: 2)
    private let upstreamAbout = UpstreamAbout()
    private let journal: RevocationJournal
    private let readiness = Readiness()
    private let identityProviders: IdentityProviders
    /// systemd's notification socket, when run by it (`Type=notify`).
    let notifier: ServiceNotifier
    let reloadsOK = Atomic<UInt64>(0)
    let reloadsFailed = Atomic<UInt64>(0)
    var metricsServer: MetricsServer?
    /// A takeover's new process said it serves (Takeover.swift): SIGUSR2 then drains.
    let handoverConfirmed = Atomic<Bool>(false)
    /// A takeover is being talked through (one at a time).
    let handoverBusy = Atomic<Bool>(false)
    /// The process that took over, watched while this one drains.
    let successorPID = Atomic<Int32>(0)
    let successorLost = Atomic<Bool>(false)
    /// Worker threads whose loop still runs.
    let runningWorkers = Atomic<Int>(0)

    init(configPath: String, environment: [String: String], log: LogWriter, demo: Bool) throws {
        self.configPath = configPath
        self.environment = environment
        self.log = log
        notifier = ServiceNotifier(environment: environment)
        identityProviders = IdentityProviders(log: log)
        var env = environment
        if demo && (env["GATEWAY_API_AUTH_PASSWORD"] ?? "").isEmpty {
            // Demo mode: a fresh password for the example user, printed once, never stored.
            env["GATEWAY_API_AUTH_PASSWORD"] = Crypto.hex(Crypto.randomBytes(12))
        }
        let loaded = try Self.loadConfig(configPath, env)
        try log.configure(format: LogFormat(rawValue: loaded.config.log.format) ?? .text, file: loaded.config.log.file)
        // The generated demo password is plaintext by design: no warning for it.
        for w in loaded.warnings where !(demo && w.contains("api.auth.password is plaintext")) { log.submit("warning: \(w)") }
        let ring = try SigningKeys.load(loaded.config, log: log)
        journal = RevocationJournal(path: (loaded.config.server.dataDir as NSString).appendingPathComponent("revocations.journal"))
        for note in try journal.replay(into: revocations, now: Int64(Date().timeIntervalSince1970)) { log.submit(note) }
        state = try GatewayState(config: loaded.config, ring: ring, revocations: revocations, startedAt: startedAt,
                                 instanceID: instanceID, upstreamAbout: upstreamAbout, journal: journal, readiness: readiness,
                                 identityProviders: identityProviders)
        identityProviders.install(state.idpTenants)
        readiness.setTargets(state.upstreams.map { ($0.url, $0.address) })
        if loaded.config.about.fromUpstream, let first = state.upstreams.first {
            upstreamAbout.start(target: first)
        }
        let login = loaded.config.login
        throttle = LoginThrottle(maxPerAddress: login.maxFailuresPerAddress, maxPerUser: login.maxFailuresPerUser,
                                 windowMs: UInt64(login.windowMs), maxEntries: login.maxTrackedEntries)
        if demo { try startDemo(loaded.config, password: env["GATEWAY_API_AUTH_PASSWORD"] ?? "") }
    }

    static func loadConfig(_ path: String, _ env: [String: String]) throws -> LoadedConfig {
        do {
            return try ConfigLoader.load(path: path, environment: env)
        } catch {
            throw StartupError("\(error)")
        }
    }

    // MARK: running

    /// Serves until SIGTERM (or a takeover's end); `takeover`: on the listeners of the gateway
    /// already running with this configuration's admin socket, which then drains.
    func run(takeover: Bool = false) -> Int32 {
        let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2]
        // Blocked before any thread starts, so every worker inherits the mask and only the
        // signalfd below sees them.
        signal(SIGPIPE, SIG_IGN)
        let sfd = signals.withUnsafeBufferPointer { gw_signalfd_for($0.baseAddress, Int32($0.count)) }
        guard sfd >= 0 else {
            printError("gateway: signalfd failed: errno \(errno)")
            return 1
        }
        // SO_REUSEPORT would let this process bind beside another one on the same address and
        // silently split its traffic: refuse when something already accepts there.
        for (address, text) in [(state.listen, state.config.server.listen)] + (state.tlsListen.map { [($0, state.config.tls.address)] } ?? [])
        where !takeover && Readiness.reachable(address) {
            printError("gateway: \(text) is already in use by another process (another gateway?)")
            return 1
        }
        Socket.raiseFileLimit()
        let count = state.config.server.workers > 0 ? state.config.server.workers : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        do {
            for i in 0..<max(1, count) {
                workers.append(try Worker(index: i, state: state, log: log, throttle: throttle, blocking: blocking))
            }
        } catch {
            printError("gateway: cannot start the workers: \(error)")
            return 1
        }
        // Metrics bind before the workers listen (and alone on their address: a clash stops the
        // start before anything is served).
        // (A takeover's new process binds it once the old one has let the address go.)
        if state.config.metrics.enable && !takeover {
            do {
                let m = MetricsServer { [self] in collectMetrics() }
                try m.start(address: try SocketAddress.resolve(state.config.metrics.listen))
                metricsServer = m
            } catch {
                printError("gateway: cannot serve metrics on \(state.config.metrics.listen): \(error)")
                return 1
            }
        }
        // A takeover asks for the running gateway's listeners first (its admin socket is still
        // the one at the path).
        var handover: Takeover.Handover?
        if takeover {
            do {
                handover = try Takeover.request(adminPath: AdminSocket.path(for: state.config), plain: state.listen, tls: state.tlsListen)
            } catch {
                printError("gateway: \(error)")
                return 1
            }
        }
        // The admin socket exists before the listeners accept: whoever sees the port answer can
        // reload and revoke at once.
        let admin = AdminSocket(path: AdminSocket.path(for: state.config), server: self, temporary: handover != nil)
        do {
            try admin.start()
        } catch {
            log.submit("warning: \(error); revoke and reload work offline or by signal only")
        }
        do {
            if let handover { try adoptListeners(handover, tlsWanted: state.tlsListen != nil) } else { for w in workers { try w.listen() } }
        } catch {
            printError("gateway: cannot listen on \(state.config.server.listen)\(state.tls != nil ? " or " + state.config.tls.address : ""): \(error)")
            return 1
        }
        log.submit("gateway \(Version.number) listening on \(state.config.server.listen)"
                   + (state.tls != nil ? " and HTTPS on \(state.config.tls.address)" : "") + " with \(workers.count) worker(s); routes: "
                   + state.config.routes.map { "\($0.prefix) -> \($0.upstream) (auth \($0.auth.rawValue))" }.joined(separator: ", "))
        runningWorkers.store(workers.count, ordering: .relaxed)
        for w in workers {
            w.onExit = { [unowned self] in runningWorkers.subtract(1, ordering: .relaxed) }
            threads.append(Self.startThread(w))
        }
        startKeysWatcher()
        if let handover {
            // Serving: the old process may stop accepting now.
            let answer = handover.confirmServing()
            guard answer == "draining" else {
                // It goes on serving: this process must not serve beside it unseen (its admin
                // socket is the old one's). It drains what it took and leaves.
                log.submit("takeover: the running gateway did not hand over (\(answer ?? "no answer")); leaving it serving")
                for w in workers {
                    let box = WorkerBox(w)
                    w.loop.execute { box.worker.beginDrain(timeoutMs: 5_000) }
                }
                for t in threads { pthread_join(t, nil) }
                log.flush()
                return 1
            }
            do { try admin.publish() } catch { log.submit("warning: \(error)") }
            log.submit("takeover: serving on the listeners handed over; the previous process drains")
            startMetricsAfterHandover()
        }
        notifier.send("READY=1\nMAINPID=\(getpid())\nSTATUS=listening on \(state.config.server.listen)")

        var exitCode: Int32 = 0
        var pfd = pollfd(fd: sfd, events: Int16(POLLIN), revents: 0)
        if let interval = notifier.watchdogIntervalMs {
            // A thread of its own: a reload resolving names must not stop the petting.
            let watchdog = LoopWatchdog(loops: workers.count), notifier = self.notifier
            let boxes = workers.map(WorkerBox.init)
            Thread.detachNewThread {
                while true {
                    watchdog.tick(boxes.map(\.worker), notifier: notifier)
                    usleep(useconds_t(max(1, interval) * 1_000))
                }
            }
        }
        var handedOver = false
        signalLoop: while true {
            let n = poll(&pfd, 1, 1000)
            if handedOver {
                if runningWorkers.load(ordering: .relaxed) == 0 { break signalLoop }
                watchSuccessor(adminPath: AdminSocket.path(for: state.config))
                if successorLost.load(ordering: .relaxed) { handedOver = false }
            }
            if n <= 0 { continue }
            let sig = gw_signalfd_read(sfd)
            switch sig {
            case SIGHUP:
                reload()
            case SIGUSR2 where handoverConfirmed.load(ordering: .relaxed):
                let timeout = state.config.server.shutdownTimeoutMs
                log.submit("takeover: a new process serves; draining (idle connections kept until their next answer or \(timeout) ms)")
                notifier.send("STOPPING=1\nSTATUS=handed over")
                for w in workers {
                    let box = WorkerBox(w)
                    w.loop.execute { box.worker.beginDrain(timeoutMs: timeout, handover: true) }
                }
                // Signals still count while draining, and the successor is watched.
                handedOver = true
            case SIGUSR1:
                // logrotate has moved the file away: lines go to a new one from now on.
                do { try log.reopen(); log.submit("SIGUSR1: reopened the log file") } catch { log.submit("warning: SIGUSR1: \(error)") }
            case SIGTERM, SIGINT:
                log.submit("signal \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): draining (at most \(state.config.server.shutdownTimeoutMs) ms)")
                notifier.send("STOPPING=1\nSTATUS=draining")
                let timeout = state.config.server.shutdownTimeoutMs
                for w in workers {
                    let box = WorkerBox(w)
                    w.loop.execute { box.worker.beginDrain(timeoutMs: timeout) }
                }
                break signalLoop
            case -1:
                exitCode = 1
                break signalLoop
            default:
                continue
            }
        }
        for t in threads { pthread_join(t, nil) }
        log.submit("stopped")
        log.flush()
        return exitCode
    }

    private let reloadLock = NSLock()

    /// Re-reads configuration and keys; swaps them in whole, or changes nothing and says why.
    /// Called by SIGHUP and by the keys-file watcher (serialised).
    @discardableResult
    func reload(reason: String = "SIGHUP") -> String {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        notifier.send(ServiceNotifier.reloadingMessage())
        // Serving goes on whether the reload took or not.
        defer { notifier.send("READY=1\nSTATUS=listening on \(state.config.server.listen)") }
        do {
            let loaded = try Self.loadConfig(configPath, environment)
            let ring = try SigningKeys.load(loaded.config, log: log)
            let next = try GatewayState(config: loaded.config, ring: ring, revocations: revocations, startedAt: startedAt,
                                        instanceID: instanceID, upstreamAbout: upstreamAbout, journal: journal, previous: state,
                                        readiness: readiness, identityProviders: identityProviders)
            identityProviders.install(next.idpTenants)
            readiness.setTargets(next.upstreams.map { ($0.url, $0.address) })
            if next.config.server.listen != state.config.server.listen || next.config.server.workers != state.config.server.workers
                || next.config.tls.enable != state.config.tls.enable || next.config.tls.address != state.config.tls.address {
                log.submit("reload: server.listen, server.workers, tls.enable and tls.address take effect on restart only")
            }
            // The log follows only a reload that took (a refused one changes nothing).
            do {
                try log.configure(format: LogFormat(rawValue: loaded.config.log.format) ?? .text, file: loaded.config.log.file)
            } catch {
                log.submit("warning: reload: \(error); the log goes where it went")
            }
            state = next
            if next.config.about.fromUpstream, let first = next.upstreams.first {
                upstreamAbout.start(target: first)
            }
            for w in workers {
                let box = WorkerBox(w), s = StateBox(next)
                w.loop.execute { box.worker.install(s.state) }
            }
            for warning in loaded.warnings { log.submit("warning: \(warning)") }
            reloadsOK.add(1, ordering: .relaxed)
            let done = "reloaded configuration and keys on \(reason) (\(ring.keys.count) key(s), active \(ring.activeKey?.kid ?? "none"))"
            log.submit(done)
            return "ok: " + done
        } catch {
            reloadsFailed.add(1, ordering: .relaxed)
            log.submit("reload refused, the running configuration stays: \(error)")
            return "error: reload refused, the running configuration stays: \(error)"
        }
    }

    /// Revokes from the admin socket: every worker sees it at once; journaled before "ok".
    func revoke(user: Bool, _ value: [UInt8], _ time: Int64) -> String {
        if user { revocations.revoke(subject: value, issuedAtOrBefore: time) } else { revocations.revoke(jti: value, until: time) }
        do {
            try journal.append(user ? .sub : .jti, value, until: time)
        } catch {
            return "error: revoked in memory but not stored: \(error)"
        }
        log.submit("admin: revoked \(user ? "the tokens of a user issued at or before \(time)" : "a token id until \(time)")")
        return "ok"
    }

    func status() -> String {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        return "ok workers=\(workers.count) keys=\(state.ring.keys.count) active_key=\(state.ring.activeKey?.kid ?? "-") "
            + "revocations=\(revocations.count) ready=\(readiness.isReady) "
            + "buffer_bytes=\(workers.reduce(0) { $0 + $1.buffers.publishedBytes.inUse }) "
            + "pooled_buffer_bytes=\(workers.reduce(0) { $0 + $1.buffers.publishedBytes.pooled })"
    }

    /// Watches the keys file (mtime, size, inode; polled each second on its own thread, never
    /// on a loop) and reloads on change; once a minute it also re-applies auto-retirement.
    private func startKeysWatcher() {
        Thread.detachNewThread { [self] in
            var last = self.keysFileStamp()
            var ticks = 0
            while true {
                sleep(1)
                ticks += 1
                let stamp = self.keysFileStamp()
                if stamp != last {
                    last = stamp
                    self.reload(reason: "a change of the keys file")
                } else if self.rotateIfDue() {
                    continue  // the change is picked up on the next tick
                } else if ticks % 60 == 0 && self.currentConfig().tokens.autoRetire {
                    let ring = self.currentRing()
                    if SigningKeys.autoRetired(ring, config: self.currentConfig(), log: self.log) !== ring { self.reload(reason: "auto-retirement") }
                }
            }
        }
    }

    /// Scheduled rotation: when the active key is older than `rotate_every`, rotate the keys file
    /// under its lock, after reading it again under that lock — so of several gateways sharing
    /// the file exactly one rotates, and the others see a young active key and do nothing.
    private func rotateIfDue() -> Bool {
        let config = currentConfig()
        let period = config.tokens.rotateEverySeconds
        guard period > 0, let path = SigningKeys.path(config) else { return false }
        let now = Int64(Date().timeIntervalSince1970)
        guard let active = currentRing().activeKey, now - active.createdAt >= period else { return false }
        do {
            return try KeyCommands.withLock(path) {
                let ring = try KeyFile.read(path: path)
                guard let current = ring.activeKey, now - current.createdAt >= period else { return false }
                let fresh = try KeyFile.rotate(ring, path: path, now: now)
                log.submit("rotated the keys file on schedule (every \(period) s): \(fresh.kid) is active, \(current.kid) verifies")
                return true
            }
        } catch {
            // Another process holds the lock (it is rotating) or the file is unreadable: next tick.
            return false
        }
    }

    private func currentConfig() -> GatewayConfig { reloadLock.lock(); defer { reloadLock.unlock() }; return state.config }
    private func currentRing() -> KeyRing { reloadLock.lock(); defer { reloadLock.unlock() }; return state.ring }
    func currentState() -> GatewayState { reloadLock.lock(); defer { reloadLock.unlock() }; return state }

    private func keysFileStamp() -> [Int64] {
        guard let path = SigningKeys.path(currentConfig()) else { return [] }
        var st = stat()
        guard stat(path, &st) == 0 else { return [-1] }
        return [Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_size), Int64(st.st_ino)]
    }

    private static func startThread(_ w: Worker) -> pthread_t {
        var t = pthread_t()
        let box = Unmanaged.passRetained(WorkerBox(w)).toOpaque()
        pthread_create(&t, nil, { raw in
            let box = Unmanaged<WorkerBox>.fromOpaque(raw!).takeRetainedValue()
            box.worker.run()
            return nil
        }, box)
        return t
    }

    // MARK: demo

    private func startDemo(_ config: GatewayConfig, password: String) throws {
        var started = Set<String>()
        for route in config.routes where !started.contains(route.upstream) {
            let hostPort = String(route.upstream.dropFirst("http://".count))
            guard hostPort.hasPrefix("127.") || hostPort.hasPrefix("localhost") else { continue }
            try DemoUpstream.start(listen: hostPort)
            started.insert(route.upstream)
        }
        let user = config.auth.username.isEmpty ? "admin" : config.auth.username
        var lines = ["demo mode: demo upstream on \(started.sorted().joined(separator: ", "))",
                     "demo mode: user \(user), password \(password) (generated for this run only)"]
        if let token = try? TokenIssuer(settings: IssuerSettings(issuer: config.tokens.issuer, accessLifetime: config.tokens.accessTTLSeconds))
            .issue(subject: user, use: .access, ring: state.ring, now: Int64(Date().timeIntervalSince1970)).token {
            lines.append("demo mode: try  curl -s -H 'Authorization: Bearer \(token)' http://\(config.server.listen)/api/v3/hello")
        }
        for l in lines { log.submit(l) }
    }
}

/// Hands a worker to its own thread or loop (it is used only there from then on).
final class WorkerBox: @unchecked Sendable {
    let worker: Worker
    init(_ worker: Worker) { self.worker = worker }
}

final class StateBox: @unchecked Sendable {
    let state: GatewayState
    init(_ state: GatewayState) { self.state = state }
}
