import TokenCore

/// The about object of `GET /api`, as datarhei Core answers it: the public part (`app`,
/// `auths`, `version.number`) for anyone, the full object for a valid access token.
struct AboutInfo: Sendable {
    let app: String
    let name: String
    let id: String
    let versionNumber: String
    let auths: [String]
    let startedAt: Int64
    let createdAt: String

    /// `identityProviders`: each tenant's `auth0 domain=... audience=... clientid=...`.
    init(config: GatewayConfig, passwordLogin: Bool, identityProviders: [String] = [], startedAt: Int64, id: String) {
        app = config.about.app
        name = config.about.name
        versionNumber = config.about.versionNumber
        auths = (passwordLogin ? ["localjwt"] : []) + identityProviders
        self.startedAt = startedAt
        self.id = id
        createdAt = Self.iso8601(startedAt)
    }

    func body(full: Bool, uptimeSeconds: Int64) -> [UInt8] {
        var w = JSONWriter(capacity: 512)
        w.raw("{\"app\":"); w.string(app)
        w.raw(",\"auths\":[")
        for (i, a) in auths.enumerated() { if i > 0 { w.raw(",") }; w.string(a) }
        w.raw("]")
        if full {
            w.raw(",\"name\":"); w.string(name)
            w.raw(",\"id\":"); w.string(id)
            w.raw(",\"created_at\":"); w.string(createdAt)
            w.raw(",\"uptime_seconds\":"); w.int(max(0, uptimeSeconds))
        }
        w.raw(",\"version\":{\"number\":"); w.string(versionNumber)
        if full {
            #if arch(x86_64)
            let arch = "amd64"
            #else
            let arch = "arm64"
            #endif
            w.raw(",\"repository_commit\":\"\",\"repository_branch\":\"\",\"build_date\":\"\",\"arch\":"); w.string("linux/" + arch)
            w.raw(",\"compiler\":"); w.string("swift 6 (gateway \(Version.number))")
        }
        w.raw("}}")
        return w.bytes
    }

    /// Unix seconds as an RFC 3339 UTC timestamp (civil-from-days, no Foundation).
    static func iso8601(_ t: Int64) -> String {
        let days = t >= 0 ? t / 86_400 : (t - 86_399) / 86_400
        let secs = t - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        var y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        if m <= 2 { y += 1 }
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))Z"
    }
}
