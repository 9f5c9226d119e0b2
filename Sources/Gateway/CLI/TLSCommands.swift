import CGatewayShims

/// `gateway tls self-signed`: a certificate and key for trying HTTPS out (browsers and clients
/// will not trust it; real deployments use a certificate from their CA).
enum TLSCommands {
    static func run(_ verb: String, _ args: ArraySlice<String>) throws -> Int32 {
        guard verb == "self-signed" else { throw UsageError("unknown tls verb \(verb); try: tls self-signed") }
        let a = try Arguments(args, options: ["cert", "key", "host", "days"])
        guard a.positional.isEmpty else { throw UsageError("tls self-signed takes no positional arguments") }
        let cert = try a.require("cert"), key = try a.require("key")
        let host = a.options["host"] ?? "localhost"
        guard let days = Int32(a.options["days"] ?? "30"), (1...825).contains(days) else {
            throw UsageError("--days must be a number from 1 to 825")
        }
        guard !host.isEmpty, host.utf8.count < 250, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }) else {
            throw UsageError("--host must be a host name or an IP address")
        }
        guard gw_tls_self_signed(cert, key, host, days) == 1 else {
            printError("gateway: could not write \(cert) and \(key)")
            return 1
        }
        print("wrote \(cert) (self-signed for \(host), \(days) days) and \(key) (mode 0600)")
        return 0
    }
}
