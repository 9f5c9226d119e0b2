import Glibc

/// The command line: `gateway [VERB] ...`. See `usage` and README.md.
let usage = """
usage: gateway [VERB] [options]

  run [--config FILE] [--demo]              run the gateway (the default verb; FILE defaults to
                                            gateway.conf; --demo also starts the demo upstream
                                            and prints a generated password and a ready token)
  run --takeover [--config FILE]            start on the listening sockets of the gateway running
                                            with FILE's data_dir, which then drains: an upgrade
                                            without a refused connection or a failed request
  upgrade [--config FILE]                   the same as run --takeover
  check-config [--config FILE]              validate, print the effective configuration
                                            (secrets masked), exit 1 naming the line of an error
  demo-upstream --listen HOST:PORT          run only the demo upstream (echoes what it receives)
  revoke [--config FILE] --user NAME [--before UNIXTIME]
                                            void every token of NAME issued at or before the time
                                            (default now), in every worker at once
  revoke [--config FILE] --jti ID [--until UNIXTIME]
                                            void one token id (talks to the running gateway over
                                            its admin socket, or writes the journal if none runs)
  reload [--config FILE]                    reload configuration and keys (admin socket)
  status [--config FILE]                    workers, keys, revocations, readiness, buffer bytes
  healthcheck [--address HOST:PORT] [--path /healthz]
                                            exit 0 when the gateway answers 200 there (a
                                            container's HEALTHCHECK; default 127.0.0.1:8080)
  version                                   print the version
  hash-password [--scheme scrypt|pbkdf2]    read a password on stdin, print its PHC hash
  keys generate [--alg HS256] [--keys FILE] print (or create FILE with) a JWK Set of one new active key
  keys rotate --keys FILE [--alg HS256]     add a new active key; the old active one only verifies
  keys retire --keys FILE KID               retire a key: tokens it signed are refused
  keys list --keys FILE                     kid, state, algorithm and age of each key (no secrets)
  token issue --keys FILE --sub USER [--use access|refresh] [--iss NAME] [--ttl SECONDS]
  token verify --keys FILE [--use access|refresh] [--iss NAME] [--leeway SECONDS] TOKEN
  tls self-signed --cert FILE --key FILE [--host localhost] [--days 30]
                                            write a self-signed certificate and key, for trying HTTPS
  bench-tokens [--iterations N]             measure token verify/issue and password hashing
"""

/// Runs one command line (`argv[0]` is the program); the process's exit status.
public func runCommand(_ argv: [String]) -> Int32 {
    let args = argv.dropFirst()
    do {
        switch (args.first, args.dropFirst().first) {
        case ("version", _):
            print(Version.line)
            return 0
        case ("hash-password", _):
            return try TokenCommands.hashPassword(args.dropFirst())
        case let ("keys", verb?):
            return try KeyCommands.run(verb, args.dropFirst(2))
        case let ("tls", verb?):
            return try TLSCommands.run(verb, args.dropFirst(2))
        case ("token", "issue"):
            return try TokenCommands.issue(args.dropFirst(2))
        case ("token", "verify"):
            return try TokenCommands.verify(args.dropFirst(2))
        case ("bench-tokens", _):
            return try BenchTokens.run(args.dropFirst())
        case ("help", _), ("--help", _), ("-h", _):
            print(usage)
            return 0
        case (nil, _):
            return try ServeCommands.run([])
        case let (flag?, _) where flag.hasPrefix("--"):
            return try ServeCommands.run(args)
        case ("run", _):
            return try ServeCommands.run(args.dropFirst())
        case ("upgrade", _):
            return try ServeCommands.run(args.dropFirst() + ["--takeover"])
        case ("check-config", _):
            return try ServeCommands.checkConfig(args.dropFirst())
        case ("revoke", _):
            return try AdminCommands.revoke(args.dropFirst())
        case ("reload", _):
            return try AdminCommands.reload(args.dropFirst())
        case ("status", _):
            return try AdminCommands.status(args.dropFirst())
        case ("healthcheck", _):
            return try ServeCommands.healthcheck(args.dropFirst())
        case ("demo-upstream", _):
            return try ServeCommands.demoUpstream(args.dropFirst())
        case let (verb?, _):
            throw UsageError("unknown verb \"\(verb)\"")
        }
    } catch let e as UsageError {
        printError("gateway: \(e.message)\n\n\(usage)")
        return 2
    } catch {
        printError("gateway: \(error)")
        return 1
    }
}

