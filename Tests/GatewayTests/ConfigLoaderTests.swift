import Foundation
import XCTest
@testable import Gateway
import TokenCore

/// gateway.conf to `GatewayConfig`: the key table, environment overrides, checks, and the
/// effective-configuration printout.
final class ConfigLoaderTests: XCTestCase {
    private let secret32 = "0123456789abcdef0123456789abcdef"

    private func load(_ text: String, env: [String: String] = [:],
                      file: StaticString = #filePath, line: UInt = #line) -> LoadedConfig? {
        do {
            return try ConfigLoader.load(text: text, fileName: "gateway.conf", environment: env)
        } catch {
            XCTFail("unexpected error: \(error)", file: file, line: line)
            return nil
        }
    }

    private func refusal(_ text: String, env: [String: String] = [:],
                         file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            _ = try ConfigLoader.load(text: text, fileName: "gateway.conf", environment: env)
            XCTFail("accepted", file: file, line: line)
            return nil
        } catch let e as ConfigError {
            return e
        } catch {
            XCTFail("not a ConfigError: \(error)", file: file, line: line)
            return nil
        }
    }

    /// Asserts `text` is refused with a description containing `fragment` (and at `line` of the
    /// file when given).
    private func assertRefused(_ text: String, env: [String: String] = [:], line expectedLine: Int?, _ fragment: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        guard let e = refusal(text, env: env, file: file, line: line) else { return }
        XCTAssertEqual(e.line, expectedLine, "line of \(e)", file: file, line: line)
        XCTAssertTrue(e.description.contains(fragment), "\(e) lacks \(fragment)", file: file, line: line)
    }

    private var examplePath: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("gateway.conf").path
    }

    private func temporaryFile(_ contents: String) throws -> String {
        let path = NSTemporaryDirectory() + "gateway-config-test-\(UUID().uuidString)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    // MARK: The example file and defaults

    func testExampleFileLoadsAndHoldsTheDefaults() throws {
        let loaded = try ConfigLoader.load(path: examplePath, environment: [:])
        XCTAssertEqual(loaded.config.sourcePath, examplePath)
        XCTAssertEqual(loaded.config.auth.username, "admin")
        XCTAssertEqual(loaded.config.auth.password, "")
        XCTAssertEqual(loaded.config.tokens.secret, "")
        var defaults = GatewayConfig()
        defaults.auth.username = "admin"
        XCTAssertEqual(ConfigLoader.effectiveText(loaded.config), ConfigLoader.effectiveText(defaults))
        XCTAssertFalse(loaded.warnings.contains { $0.contains("plaintext") })
    }

    func testExampleFileSetsEveryKeyButTheSecrets() throws {
        let text = try String(contentsOfFile: examplePath, encoding: .utf8)
        let tree = try TOMLReader.parse(text, fileName: "gateway.conf")
        for setting in ConfigLoader.settings {
            var node: TOMLValue? = tree
            for part in setting.path.split(separator: ".") { node = node?[String(part)] }
            if setting.secret {
                XCTAssertNil(node, "\(setting.path) must not be set in the example")
            } else {
                XCTAssertNotNil(node, "\(setting.path) is missing from the example")
            }
        }
        XCTAssertEqual(tree["route"]?.arrayValue?.count, 1)
    }

    func testEmptyFileGivesTheDefaults() {
        let loaded = load("")
        XCTAssertEqual(loaded.map { ConfigLoader.effectiveText($0.config) }, ConfigLoader.effectiveText(GatewayConfig()))
        XCTAssertEqual(loaded?.config.routes.map(\.prefix), ["/api/v3/"])
    }

    func testMissingFileIsAnErrorNamingIt() {
        XCTAssertThrowsError(try ConfigLoader.load(path: "/nonexistent/gateway.conf", environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("cannot read /nonexistent/gateway.conf"), "\(error)")
        }
    }

    // MARK: Reading every key

    func testEveryKeyIsReadIntoItsField() {
        let c = load("""
            [server]
            listen = "[::1]:9090"
            workers = 4
            max_connections = 500
            header_timeout = "500ms"
            idle_timeout = 90
            body_timeout = "2m"
            connect_timeout = "1s"
            response_timeout = "1h"
            shutdown_timeout = "20s"
            data_dir = "/var/lib/gateway"
            trusted_proxies = ["10.0.0.1", "::1"]
            upstream_idle_per_worker = 0
            upstream_idle_timeout = "45s"
            [limits]
            request_line = 4096
            header_bytes = 65536
            header_fields = 50
            body = "512KiB"
            [api.auth]
            enable = true
            username = "root"
            password = "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA"
            [api.auth.jwt]
            secret = "\(secret32)"
            kid = "k1"
            issuer = "me"
            access_ttl = "5m"
            refresh_ttl = "48h"
            leeway = "30s"
            [log]
            access = false
            level = "debug"
            """)?.config
        guard let c else { return }
        XCTAssertEqual(c.server.listen, "[::1]:9090")
        XCTAssertEqual(c.server.workers, 4)
        XCTAssertEqual(c.server.maxConnections, 500)
        XCTAssertEqual(c.server.headerTimeoutMs, 500)
        XCTAssertEqual(c.server.idleTimeoutMs, 90_000)
        XCTAssertEqual(c.server.bodyTimeoutMs, 120_000)
        XCTAssertEqual(c.server.connectTimeoutMs, 1_000)
        XCTAssertEqual(c.server.responseTimeoutMs, 3_600_000)
        XCTAssertEqual(c.server.shutdownTimeoutMs, 20_000)
        XCTAssertEqual(c.server.dataDir, "/var/lib/gateway")
        XCTAssertEqual(c.server.trustedProxies, ["10.0.0.1", "::1"])
        XCTAssertEqual(c.server.upstreamIdlePerWorker, 0)
        XCTAssertEqual(c.server.upstreamIdleTimeoutMs, 45_000)
        XCTAssertEqual(c.limits.requestLineBytes, 4096)
        XCTAssertEqual(c.limits.headerBytes, 65536)
        XCTAssertEqual(c.limits.headerFields, 50)
        XCTAssertEqual(c.limits.bodyBytes, 512 * 1024)
        XCTAssertEqual(c.auth.enable, true)
        XCTAssertEqual(c.auth.username, "root")
        XCTAssertEqual(c.auth.password, "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA")
        XCTAssertEqual(c.tokens.secret, secret32)
        XCTAssertEqual(c.tokens.kid, "k1")
        XCTAssertEqual(c.tokens.issuer, "me")
        XCTAssertEqual(c.tokens.accessTTLSeconds, 300)
        XCTAssertEqual(c.tokens.refreshTTLSeconds, 172_800)
        XCTAssertEqual(c.tokens.leewaySeconds, 30)
        XCTAssertEqual(c.log.access, false)
        XCTAssertEqual(c.log.level, "debug")
    }

    func testEmptySectionsAreAccepted() {
        let c = load("[server]\n[limits]\n[api.auth]\n[api.auth.jwt]\n[log]\n")?.config
        XCTAssertEqual(c?.server.listen, GatewayConfig().server.listen)
        assertRefused("[[server]]", line: 1, "server must be a table, not an array")
    }

    func testDottedKeysWorkLikeTables() {
        let c = load("server.listen = \"0.0.0.0:80\"\napi.auth.jwt.keys_file = \"keys.json\"")?.config
        XCTAssertEqual(c?.server.listen, "0.0.0.0:80")
        XCTAssertEqual(c?.tokens.keysFile, "keys.json")
    }

    func testDurationsAreSecondsOrANumberWithAUnit() {
        XCTAssertEqual(load("server.idle_timeout = 5")?.config.server.idleTimeoutMs, 5_000)
        XCTAssertEqual(load("server.idle_timeout = \"250ms\"")?.config.server.idleTimeoutMs, 250)
        XCTAssertEqual(load("server.idle_timeout = \"10m\"")?.config.server.idleTimeoutMs, 600_000)
        XCTAssertEqual(load("server.idle_timeout = \"24h\"")?.config.server.idleTimeoutMs, 86_400_000)
        assertRefused("\n[server]\nidle_timeout = \"5 minutes\"", line: 3, "server.idle_timeout must be a duration")
        assertRefused("server.idle_timeout = \"1.5s\"", line: 1, "must be a duration")
        assertRefused("server.idle_timeout = true", line: 1, "must be a duration")
        assertRefused("server.idle_timeout = -1", line: 1, "must not be negative")
    }

    func testTokenLifetimesMustBeWholeSeconds() {
        XCTAssertEqual(load("api.auth.jwt.leeway = \"2000ms\"")?.config.tokens.leewaySeconds, 2)
        assertRefused("api.auth.jwt.leeway = \"1500ms\"", line: 1, "api.auth.jwt.leeway must be a whole number of seconds")
    }

    func testSizesUseBinaryUnitsOrPlainBytes() {
        XCTAssertEqual(load("limits.body = 100")?.config.limits.bodyBytes, 100)
        XCTAssertEqual(load("limits.body = \"100B\"")?.config.limits.bodyBytes, 100)
        XCTAssertEqual(load("limits.body = \"512KiB\"")?.config.limits.bodyBytes, 512 * 1024)
        XCTAssertEqual(load("limits.body = \"10MiB\"")?.config.limits.bodyBytes, 10 * 1024 * 1024)
        XCTAssertEqual(load("limits.body = \"1GiB\"")?.config.limits.bodyBytes, 1 << 30)
        XCTAssertEqual(load("limits.body = \"2 mib\"")?.config.limits.bodyBytes, 2 << 20)
        assertRefused("limits.body = \"1.5GiB\"", line: 1, "limits.body must be a size")
        assertRefused("limits.body = 0", line: 1, "limits.body must be at least 1 bytes")
    }

    func testAmbiguousSizeUnitsAreRefused() {
        for unit in ["KB", "MB", "GB", "k", "M"] {
            assertRefused("\nlimits.body = \"10\(unit)\"", line: 2, "ambiguous unit \"\(unit)\"")
        }
    }

    func testWorkersIsAutoOrAPositiveNumber() {
        XCTAssertEqual(load("server.workers = \"auto\"")?.config.server.workers, 0)
        XCTAssertEqual(load("server.workers = 3")?.config.server.workers, 3)
        assertRefused("server.workers = 0", line: 1, "server.workers must be \"auto\" or a number from 1 to 1024 (it is 0)")
        assertRefused("server.workers = \"many\"", line: 1, "server.workers must be \"auto\"")
    }

    func testWrongTypeIsAnErrorNamingKeyAndLine() {
        assertRefused("[server]\nmax_connections = \"many\"", line: 2, "gateway.conf:2: server.max_connections must be an integer, not a string")
        assertRefused("[log]\naccess = \"yes\"", line: 2, "log.access must be true or false")
        assertRefused("server = 5", line: 1, "server must be a table, not an integer")
        assertRefused("[server]\ntrusted_proxies = \"10.0.0.1\"", line: 2, "must be an array of IP addresses")
    }

    func testSyntaxErrorsCarryFileLineAndColumn() {
        guard let e = refusal("[server]\nlisten =\n") else { return }
        XCTAssertEqual(e.description, "gateway.conf:2:9: expected a value")
        XCTAssertEqual(e.line, 2)
        XCTAssertEqual(e.column, 9)
    }

    // MARK: Unknown keys

    func testUnknownKeyNamesItsLineAndSuggestsTheKnownOne() {
        guard let e = refusal("# gateway\n[server]\nlisen = \"0.0.0.0:80\"") else { return }
        XCTAssertEqual(e.line, 3)
        XCTAssertEqual(e.description, "gateway.conf:3: unknown key server.lisen; did you mean server.listen?")
    }

    func testUnknownKeySuggestionsLookAtTheLastSegmentToo() {
        assertRefused("[server]\npassword = \"x\"", line: 2, "unknown key server.password; did you mean api.auth.password?")
        assertRefused("[serve]\nlisten = \"x\"", line: 2, "unknown key serve.listen; did you mean server.listen?")
        assertRefused("[serve]", line: 1, "unknown key serve; did you mean server?")
        assertRefused("frobnicate = 1", line: 1, "unknown key frobnicate")
        XCTAssertFalse(refusal("frobnicate = 1")?.description.contains("did you mean") ?? true)
    }

    func testUnknownRouteKeyIsAnErrorWithASuggestion() {
        assertRefused("[[route]]\nprefix = \"/a/\"\nupstrem = \"http://h:1\"", line: 3, "unknown key route.upstrem; did you mean route.upstream?")
        assertRefused("route = []", line: 1, "route must be written as [[route]] sections")
    }

    func testAQuotedKeyWithADotIsNotAPath() {
        assertRefused("\"server.listen\" = \"x:1\"", line: 1, "unknown key \"server.listen\"")
    }

    // MARK: Routes

    func testRoutesReplaceTheDefaultAndSortLongestPrefixFirst() {
        let routes = load("""
            [[route]]
            prefix = "/"
            upstream = "http://127.0.0.1:1"
            auth = "none"
            [[route]]
            prefix = "/api/"
            upstream = "http://127.0.0.1:2/"
            forward_authorization = true
            max_body = "1MiB"
            [[route]]
            prefix = "/b/"
            upstream = "http://localhost:3"
            [[route]]
            prefix = "/a/"
            upstream = "http://[::1]:4"
            """)?.config.routes
        XCTAssertEqual(routes?.map(\.prefix), ["/api/", "/b/", "/a/", "/"], "longest first; equal lengths keep file order")
        XCTAssertEqual(routes?[0].forwardAuthorization, true)
        XCTAssertEqual(routes?[0].maxBodyBytes, 1 << 20)
        XCTAssertEqual(routes?[0].auth, .required)
        XCTAssertEqual(routes?[1].maxBodyBytes, nil)
        XCTAssertEqual(routes?[3].auth, GatewayConfig.Route.AuthMode.none)
    }

    func testDuplicateRoutePrefixIsAnError() {
        assertRefused("""
            [[route]]
            prefix = "/a/"
            upstream = "http://h:1"
            [[route]]
            prefix = "/a/"
            upstream = "http://h:2"
            """, line: 4, "route prefix \"/a/\" is already used by the route at line 1")
    }

    func testRouteNeedsAPrefixStartingWithSlashAndAnUpstream() {
        assertRefused("\n[[route]]\nupstream = \"http://h:1\"", line: 2, "[[route]] has no prefix")
        assertRefused("[[route]]\nprefix = \"/a/\"", line: 1, "[[route]] /a/ has no upstream")
        assertRefused("[[route]]\nprefix = \"api/\"\nupstream = \"http://h:1\"", line: 2, "route.prefix must start with \"/\"")
        assertRefused("[[route]]\nprefix = \"/a?b\"\nupstream = \"http://h:1\"", line: 2, "route.prefix must be a path without")
        assertRefused("[[route]]\nprefix = \"/a/\"\nupstream = \"http://h:1\"\nauth = \"optional\"", line: 4, "route.auth must be \"required\" or \"none\"")
    }

    func testUpstreamMustBeHTTPOrHTTPSHostAndPort() throws {
        func route(_ upstream: String) -> String { "[[route]]\nprefix = \"/a/\"\nupstream = \"\(upstream)\"" }
        let https = try ConfigLoader.load(text: route("https://h:443") + "\ntls_server_name = \"api.example.com\"", fileName: "gateway.conf", environment: [:])
        XCTAssertEqual(https.config.routes.first?.upstream, "https://h:443")
        XCTAssertEqual(https.config.routes.first?.tlsServerName, "api.example.com")
        assertRefused(route("https://h:443/base"), line: 3, "route.upstream must be https://host:port with no path")
        assertRefused(route("ftp://h:21"), line: 3, "must be http://host:port or https://host:port")
        assertRefused(route("http://h:1/base"), line: 3, "with no path")
        assertRefused(route("http://h"), line: 3, "route.upstream must be http://host:port: there is no :port")
        assertRefused(route("http://h:0"), line: 3, "port must be a number from 1 to 65535")
        assertRefused(route("h:80"), line: 3, "route.upstream must be http://host:port or https://host:port")
        assertRefused(route("http://u@h:80"), line: 3, "without user information")
    }

    // MARK: Checks

    func testListenMustBeHostAndAPortFrom1To65535() {
        for good in ["127.0.0.1:8080", "[::1]:1", "localhost:65535", "0.0.0.0:80"] {
            XCTAssertEqual(load("server.listen = \"\(good)\"")?.config.server.listen, good)
        }
        for (bad, why) in [("8080", "there is no :port"), ("h:0", "1 to 65535"), ("h:65536", "1 to 65535"),
                           ("::1:80", "in brackets"), (":80", "host is missing"), ("h:8o", "1 to 65535"), ("[::1]80", "]:port")] {
            assertRefused("\n\nserver.listen = \"\(bad)\"", line: 3, "server.listen must be host:port")
            assertRefused("server.listen = \"\(bad)\"", line: 1, why)
        }
    }

    func testTimeoutsMustBeGreaterThanZero() {
        for key in ["header_timeout", "idle_timeout", "body_timeout", "connect_timeout", "response_timeout",
                    "shutdown_timeout", "upstream_idle_timeout"] {
            assertRefused("[server]\n\(key) = 0", line: 2, "server.\(key) must be greater than 0")
        }
        assertRefused("api.auth.jwt.access_ttl = 0", line: 1, "api.auth.jwt.access_ttl must be at least 1s")
    }

    func testLimitsMustBeSane() {
        assertRefused("limits.request_line = 100", line: 1, "limits.request_line must be between 256 and 65536 (it is 100)")
        assertRefused("limits.header_fields = 0", line: 1, "limits.header_fields must be between 1 and 10000")
        assertRefused("limits.header_fields = 10001", line: 1, "limits.header_fields must be between 1 and 10000")
        assertRefused("server.max_connections = 0", line: 1, "server.max_connections must be between 1")
        assertRefused("[limits]\nrequest_line = 8192\nheader_bytes = 4096", line: 3,
                      "limits.header_bytes (4096) must be at least limits.request_line (8192)")
        assertRefused("[limits]\nrequest_line = 65536", line: 2, "limits.header_bytes (32768) must be at least limits.request_line (65536)")
    }

    func testShortJWTSecretIsRefusedWithItsLength() {
        assertRefused("[api.auth.jwt]\nsecret = \"short\"", line: 2, "api.auth.jwt.secret must be at least 32 bytes (it is 5)")
        // Bytes, not characters: 16 two-byte characters are 32 bytes.
        XCTAssertNotNil(load("api.auth.jwt.secret = \"\(String(repeating: "é", count: 16))\""))
        XCTAssertFalse(refusal("api.auth.jwt.secret = \"short\"")?.description.contains("short") ?? true, "the secret is not echoed")
    }

    func testSecretAndKeysFileTogetherAreRefused() {
        assertRefused("[api.auth.jwt]\nkeys_file = \"k.json\"\nsecret = \"\(secret32)\"", line: 3,
                      "api.auth.jwt.secret and api.auth.jwt.keys_file are both set")
    }

    func testAccessTTLMustBeShorterThanRefreshTTL() {
        assertRefused("[api.auth.jwt]\naccess_ttl = \"2h\"\nrefresh_ttl = \"1h\"", line: 2,
                      "api.auth.jwt.access_ttl (7200s) must be shorter than api.auth.jwt.refresh_ttl (3600s)")
        assertRefused("api.auth.jwt.refresh_ttl = 600", line: 1, "must be shorter than api.auth.jwt.refresh_ttl (600s)")
    }

    func testAuthDisabledRequiresEveryRouteToSayAuthNone() {
        assertRefused("api.auth.enable = false", line: 1, "the default route /api/v3/ requires auth")
        assertRefused("api.auth.enable = false\n[[route]]\nprefix = \"/a/\"\nupstream = \"http://h:1\"", line: 2,
                      "route /a/ must say auth = \"none\"")
        let ok = load("api.auth.enable = false\n[[route]]\nprefix = \"/a/\"\nupstream = \"http://h:1\"\nauth = \"none\"")
        XCTAssertEqual(ok?.config.auth.enable, false)
    }

    func testPlaintextPasswordIsAllowedWithAWarning() {
        let plain = load("api.auth.username = \"admin\"\napi.auth.password = \"hunter2\"")
        XCTAssertEqual(plain?.config.auth.password, "hunter2")
        XCTAssertTrue(plain?.warnings.contains("api.auth.password is plaintext; store a hash from `gateway hash-password`") ?? false)
        for hash in ["$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA", "$pbkdf2-sha256$i=600000$c2FsdA$aGFzaA"] {
            let hashed = load("api.auth.username = \"admin\"\napi.auth.password = '\(hash)'")
            XCTAssertEqual(hashed?.warnings, [])
        }
    }

    func testTrustedProxiesMustBeIPAddresses() {
        assertRefused("[server]\ntrusted_proxies = [\"10.0.0.1\", \"proxy.local\"]", line: 2, "\"proxy.local\" is not one")
        assertRefused("server.trusted_proxies = [1]", line: 1, "must list IP addresses as strings")
    }

    func testStripRequestFieldsAreFieldNamesTheGatewayDoesNotNeed() {
        XCTAssertEqual(load("")?.config.server.stripRequestFields.count, 8, "the identity fields by default")
        XCTAssertEqual(load("server.strip_request_fields = [\"X-Tenant\", \"x_user\"]")?.config.server.stripRequestFields,
                       ["X-Tenant", "x_user"])
        XCTAssertEqual(load("server.strip_request_fields = []")?.config.server.stripRequestFields, [])
        XCTAssertEqual(load("", env: ["GATEWAY_SERVER_STRIP_REQUEST_FIELDS": "X-A, X-B"])?.config.server.stripRequestFields,
                       ["X-A", "X-B"])
        assertRefused("server.strip_request_fields = [\"X Bad\"]", line: 1, "\"X Bad\" is not one")
        assertRefused("server.strip_request_fields = [\"\"]", line: 1, "must list header field names")
        assertRefused("server.strip_request_fields = [\"Content_Length\"]", line: 1,
                      "must not list Content_Length: the gateway reads it to frame, route or check the request")
        assertRefused("server.strip_request_fields = [\"host\"]", line: 1, "must not list host")
        assertRefused("server.strip_request_fields = \"X-A\"", line: 1, "must be an array of header field names")
        let many = (0...64).map { "\"X-\($0)\"" }.joined(separator: ",")
        assertRefused("server.strip_request_fields = [\(many)]", line: 1, "must list at most 64 header field names (it lists 65)")
    }

    func testLogLevelIsOneOfFour() {
        XCTAssertEqual(load("log.level = \"warn\"")?.config.log.level, "warn")
        assertRefused("log.level = \"verbose\"", line: 1, "log.level must be one of \"error\", \"warn\", \"info\", \"debug\" (it is \"verbose\")")
    }

    // MARK: Environment

    func testEveryKeyHasItsOwnEnvironmentName() {
        var names = ConfigLoader.settings.map(\.environmentName)
        names += ConfigLoader.settings.filter(\.secret).map { $0.environmentName + "_FILE" }
        XCTAssertEqual(Set(names).count, names.count)
        XCTAssertTrue(names.contains("GATEWAY_SERVER_MAX_CONNECTIONS"))
        XCTAssertTrue(names.contains("GATEWAY_API_AUTH_JWT_SECRET_FILE"))
        XCTAssertTrue(names.contains("GATEWAY_API_AUTH_PASSWORD_FILE"))
    }

    func testEnvironmentOverridesTheFileForAKeyWithUnderscores() {
        let c = load("server.max_connections = 100", env: ["GATEWAY_SERVER_MAX_CONNECTIONS": "2_500"])?.config
        XCTAssertEqual(c?.server.maxConnections, 2500)
        XCTAssertEqual(load("", env: ["GATEWAY_SERVER_UPSTREAM_IDLE_PER_WORKER": "8"])?.config.server.upstreamIdlePerWorker, 8)
    }

    func testEnvironmentValuesFollowTheFileRules() {
        let c = load("", env: [
            "GATEWAY_SERVER_HEADER_TIMEOUT": "5s",
            "GATEWAY_SERVER_IDLE_TIMEOUT": "7",
            "GATEWAY_LOG_ACCESS": "false",
            "GATEWAY_SERVER_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2,",
            "GATEWAY_SERVER_WORKERS": "auto",
            "GATEWAY_LIMITS_BODY": "1MiB",
            "GATEWAY_API_AUTH_USERNAME": "ops",
            "GATEWAY_API_AUTH_PASSWORD": "$scrypt$x",
        ])?.config
        XCTAssertEqual(c?.server.headerTimeoutMs, 5000)
        XCTAssertEqual(c?.server.idleTimeoutMs, 7000)
        XCTAssertEqual(c?.log.access, false)
        XCTAssertEqual(c?.server.trustedProxies, ["10.0.0.1", "10.0.0.2"])
        XCTAssertEqual(c?.server.workers, 0)
        XCTAssertEqual(c?.limits.bodyBytes, 1 << 20)
        XCTAssertEqual(c?.auth.username, "ops")
        XCTAssertEqual(c?.auth.password, "$scrypt$x")
        XCTAssertEqual(load("", env: ["GATEWAY_SERVER_TRUSTED_PROXIES": ""])?.config.server.trustedProxies, [])
    }

    func testSecretsCanComeFromAFileWithOneTrailingNewlineStripped() throws {
        let secretFile = try temporaryFile(secret32 + "\n")
        let passwordFile = try temporaryFile("pass word\n\n")
        let crlfFile = try temporaryFile("abc\r\n")
        let c = load("", env: ["GATEWAY_API_AUTH_JWT_SECRET_FILE": secretFile,
                               "GATEWAY_API_AUTH_PASSWORD_FILE": passwordFile])?.config
        XCTAssertEqual(c?.tokens.secret, secret32)
        XCTAssertEqual(c?.auth.password, "pass word\n", "only one newline is stripped")
        XCTAssertEqual(load("", env: ["GATEWAY_API_AUTH_PASSWORD_FILE": crlfFile])?.config.auth.password, "abc")
    }

    func testSecretFileErrorsNameTheVariable() throws {
        assertRefused("", env: ["GATEWAY_API_AUTH_JWT_SECRET_FILE": "/nonexistent/secret"], line: nil,
                      "GATEWAY_API_AUTH_JWT_SECRET_FILE: cannot read /nonexistent/secret")
        let short = try temporaryFile("short\n")
        assertRefused("", env: ["GATEWAY_API_AUTH_JWT_SECRET_FILE": short], line: nil,
                      "GATEWAY_API_AUTH_JWT_SECRET_FILE: api.auth.jwt.secret must be at least 32 bytes (it is 5)")
        assertRefused("", env: ["GATEWAY_API_AUTH_PASSWORD": "a", "GATEWAY_API_AUTH_PASSWORD_FILE": short], line: nil,
                      "GATEWAY_API_AUTH_PASSWORD and GATEWAY_API_AUTH_PASSWORD_FILE are both set")
    }

    func testInvalidEnvironmentValueNamesTheVariable() {
        assertRefused("", env: ["GATEWAY_SERVER_HEADER_TIMEOUT": "soon"], line: nil,
                      "GATEWAY_SERVER_HEADER_TIMEOUT: server.header_timeout must be a duration")
        assertRefused("", env: ["GATEWAY_SERVER_MAX_CONNECTIONS": "lots"], line: nil,
                      "GATEWAY_SERVER_MAX_CONNECTIONS: server.max_connections must be an integer, not \"lots\"")
        assertRefused("", env: ["GATEWAY_API_AUTH_ENABLE": "yes"], line: nil, "GATEWAY_API_AUTH_ENABLE: api.auth.enable must be true or false")
        assertRefused("", env: ["GATEWAY_SERVER_LISTEN": "nowhere"], line: nil, "GATEWAY_SERVER_LISTEN: server.listen must be host:port")
    }

    func testChecksAcrossKeysNameTheVariableThatSetTheValue() {
        assertRefused("api.auth.jwt.keys_file = \"k.json\"", env: ["GATEWAY_API_AUTH_JWT_SECRET": secret32], line: nil,
                      "GATEWAY_API_AUTH_JWT_SECRET: api.auth.jwt.secret and api.auth.jwt.keys_file are both set")
        // Fixed through the environment: the file's value no longer matters.
        XCTAssertEqual(load("server.listen = \"x:1\"", env: ["GATEWAY_SERVER_LISTEN": "127.0.0.1:1"])?.config.server.listen, "127.0.0.1:1")
    }

    func testUnknownEnvironmentVariablesAreWarningsWithASuggestion() {
        let loaded = load("", env: ["GATEWAY_SERVER_LISEN": "x", "GATEWAY_FROBNICATE": "1", "HOME": "/root", "PATH": "/bin"])
        XCTAssertEqual(loaded?.warnings.filter { $0.hasPrefix("unknown environment variable") }, [
            "unknown environment variable GATEWAY_FROBNICATE ignored",
            "unknown environment variable GATEWAY_SERVER_LISEN ignored; did you mean GATEWAY_SERVER_LISTEN?",
        ])
        let fileForPlainKey = load("", env: ["GATEWAY_API_AUTH_USERNAME_FILE": "/tmp/x"])
        XCTAssertEqual(fileForPlainKey?.warnings.first,
                       "environment variable GATEWAY_API_AUTH_USERNAME_FILE ignored: only secrets (api.auth.password, api.auth.jwt.secret) can be read from a file")
    }

    // MARK: Effective configuration

    private let fullConfigText = """
        [server]
        listen = "0.0.0.0:8443"
        workers = 2
        max_connections = 1234
        header_timeout = "1500ms"
        trusted_proxies = ["10.1.1.1", "fd00::1"]
        data_dir = "/srv/gw \\"data\\""
        [limits]
        body = 1000
        header_fields = 64
        [api.auth]
        username = "admin"
        password = "$pbkdf2-sha256$i=1$c2FsdA$aGFzaA"
        [api.auth.jwt]
        secret = "0123456789abcdef0123456789abcdef-very-secret"
        kid = "main"
        access_ttl = 90
        refresh_ttl = "36h"
        leeway = 5
        [log]
        level = "warn"
        [[route]]
        prefix = "/api/v3/"
        upstream = "http://127.0.0.1:9000"
        [[route]]
        prefix = "/static/files/"
        upstream = "http://[::1]:9001"
        auth = "none"
        max_body = "64KiB"
        forward_authorization = true
        """

    /// The text's lines without comments and blank lines.
    private func settingLines(_ text: String) -> [String] {
        text.split(separator: "\n").map { line in
            String(line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]).trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
    }

    func testEffectiveTextHasOneKeyPerLineWithItsDoc() {
        let text = ConfigLoader.effectiveText(GatewayConfig())
        let keyLines = text.split(separator: "\n").filter { $0.contains(" = ") }
        XCTAssertEqual(keyLines.count, ConfigLoader.settings.count + 6, "every key, and the default route's six")
        XCTAssertTrue(text.contains("max_connections = 10000             # open client connections per worker"), text)
    }

    func testEffectiveTextMasksEverySecret() {
        guard let config = load(fullConfigText)?.config else { return }
        let text = ConfigLoader.effectiveText(config)
        XCTAssertFalse(text.contains("very-secret"), text)
        XCTAssertFalse(text.contains("pbkdf2"), text)
        XCTAssertTrue(text.contains("password = \"********\""), text)
        XCTAssertTrue(text.contains("secret = \"********\""), text)
        let lines = settingLines(ConfigLoader.effectiveText(GatewayConfig()))
        XCTAssertTrue(lines.contains("password = \"\""), "\(lines)")
        XCTAssertTrue(lines.contains("workers = \"auto\""), "\(lines)")
        XCTAssertTrue(lines.contains("body = \"10MiB\""), "\(lines)")
        XCTAssertEqual(Array(lines.suffix(7)), ["[[route]]", "prefix = \"/api/v3/\"", "upstream = \"http://127.0.0.1:9000\"",
                                                "auth = \"required\"", "forward_authorization = false", "errors = \"datarhei\"",
                                                "close_on_expiry = true"])
    }

    func testEffectiveTextRoundTripsWithSecretsFromTheEnvironment() {
        guard let original = load(fullConfigText)?.config else { return }
        let text = ConfigLoader.effectiveText(original)
        let env = ["GATEWAY_API_AUTH_PASSWORD": original.auth.password, "GATEWAY_API_AUTH_JWT_SECRET": original.tokens.secret]
        guard let reloaded = load(text, env: env)?.config else { return }
        XCTAssertEqual(ConfigLoader.effectiveText(reloaded), text)
        XCTAssertEqual(reloaded.tokens.secret, original.tokens.secret)
        XCTAssertEqual(reloaded.auth.password, original.auth.password)
        XCTAssertEqual(reloaded.server.headerTimeoutMs, 1500)
        XCTAssertEqual(reloaded.server.dataDir, "/srv/gw \"data\"")
        XCTAssertEqual(reloaded.routes.map(\.prefix), ["/static/files/", "/api/v3/"])
        XCTAssertEqual(reloaded.routes.map(\.maxBodyBytes), [64 * 1024, nil])
        XCTAssertEqual(reloaded.limits.bodyBytes, 1000)
    }

    func testMaskedSecretsAreRefusedWhenLoadedBack() {
        guard let config = load(fullConfigText)?.config else { return }
        let text = ConfigLoader.effectiveText(config)
        guard let e = refusal(text, env: ["GATEWAY_API_AUTH_JWT_SECRET": secret32]) else { return }
        XCTAssertTrue(e.description.contains("api.auth.password is the mask \"********\""), "\(e)")
        XCTAssertNotNil(e.line)
    }

    // MARK: Login limits

    /// Well-formed PHC strings (all-zero salt and hash): they parse, and match no password anyone uses.
    private let scryptHash = "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    private let pbkdf2Hash = "$pbkdf2-sha256$i=600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

    func testTheTestHashesAreHashes() {
        XCTAssertTrue(PasswordHasher.isHash(scryptHash))
        XCTAssertTrue(PasswordHasher.isHash(pbkdf2Hash))
    }

    func testLoginKeysAreReadIntoTheirFields() {
        let c = load("""
            [login]
            failure_delay = "250ms"
            max_failures_per_address = 20
            max_failures_per_user = 3
            window = "10m"
            max_tracked = 5_000
            """)?.config
        XCTAssertEqual(c?.login.failureDelayMs, 250)
        XCTAssertEqual(c?.login.maxFailuresPerAddress, 20)
        XCTAssertEqual(c?.login.maxFailuresPerUser, 3)
        XCTAssertEqual(c?.login.windowMs, 600_000)
        XCTAssertEqual(c?.login.maxTrackedEntries, 5_000)
        XCTAssertEqual(load("login.failure_delay = 2")?.config.login.failureDelayMs, 2_000)
        XCTAssertEqual(load("login.window = 30")?.config.login.windowMs, 30_000)
        let defaults = load("")?.config.login
        XCTAssertEqual(defaults?.failureDelayMs, 1_000)
        XCTAssertEqual(defaults?.maxFailuresPerAddress, 10)
        XCTAssertEqual(defaults?.maxFailuresPerUser, 5)
        XCTAssertEqual(defaults?.windowMs, 60_000)
        XCTAssertEqual(defaults?.maxTrackedEntries, 100_000)
    }

    func testLoginFailureDelayIsZeroToSixtySeconds() {
        XCTAssertEqual(load("login.failure_delay = 0")?.config.login.failureDelayMs, 0)
        XCTAssertEqual(load("login.failure_delay = \"0ms\"")?.config.login.failureDelayMs, 0)
        XCTAssertEqual(load("login.failure_delay = \"60s\"")?.config.login.failureDelayMs, 60_000)
        XCTAssertEqual(load("login.failure_delay = \"1m\"")?.config.login.failureDelayMs, 60_000)
        assertRefused("[login]\nfailure_delay = \"60001ms\"", line: 2, "gateway.conf:2: login.failure_delay must be at most 60s (it is 60001ms)")
        assertRefused("\n[login]\nfailure_delay = 61", line: 3, "login.failure_delay must be at most 60s (it is 61s)")
        assertRefused("login.failure_delay = -1", line: 1, "login.failure_delay must not be negative")
        assertRefused("login.failure_delay = \"soon\"", line: 1, "login.failure_delay must be a duration")
    }

    func testLoginLimitsMustBeInRange() {
        XCTAssertEqual(load("login.max_failures_per_address = 1")?.config.login.maxFailuresPerAddress, 1)
        XCTAssertEqual(load("login.max_failures_per_user = 1_000_000")?.config.login.maxFailuresPerUser, 1_000_000)
        XCTAssertEqual(load("login.max_tracked = 100")?.config.login.maxTrackedEntries, 100)
        XCTAssertEqual(load("login.max_tracked = 10_000_000")?.config.login.maxTrackedEntries, 10_000_000)
        assertRefused("[login]\nmax_failures_per_address = 0", line: 2, "login.max_failures_per_address must be between 1 and 1000000 (it is 0)")
        assertRefused("[login]\n\nmax_failures_per_address = 1000001", line: 3, "login.max_failures_per_address must be between 1 and 1000000 (it is 1000001)")
        assertRefused("[login]\nmax_failures_per_user = 0", line: 2, "login.max_failures_per_user must be between 1 and 1000000 (it is 0)")
        assertRefused("[login]\nmax_failures_per_user = 1000001", line: 2, "login.max_failures_per_user must be between 1 and 1000000")
        assertRefused("[login]\nmax_tracked = 99", line: 2, "login.max_tracked must be between 100 and 10000000 (it is 99)")
        assertRefused("[login]\nmax_tracked = 10000001", line: 2, "login.max_tracked must be between 100 and 10000000 (it is 10000001)")
        assertRefused("[login]\nmax_tracked = \"lots\"", line: 2, "login.max_tracked must be an integer, not a string")
        assertRefused("[login]\nwindow = 0", line: 2, "login.window must be greater than 0")
        assertRefused("[login]\nwindow = \"0ms\"", line: 2, "login.window must be greater than 0")
        assertRefused("[login]\nwindo = 5", line: 2, "unknown key login.windo; did you mean login.window?")
    }

    func testLoginKeysHaveEnvironmentOverrides() {
        let c = load("[login]\nfailure_delay = \"2s\"\nwindow = \"5m\"", env: [
            "GATEWAY_LOGIN_FAILURE_DELAY": "500ms",
            "GATEWAY_LOGIN_MAX_FAILURES_PER_ADDRESS": "7",
            "GATEWAY_LOGIN_MAX_FAILURES_PER_USER": "2",
            "GATEWAY_LOGIN_WINDOW": "90",
            "GATEWAY_LOGIN_MAX_TRACKED": "1_000",
        ])
        XCTAssertEqual(c?.config.login.failureDelayMs, 500)
        XCTAssertEqual(c?.config.login.maxFailuresPerAddress, 7)
        XCTAssertEqual(c?.config.login.maxFailuresPerUser, 2)
        XCTAssertEqual(c?.config.login.windowMs, 90_000)
        XCTAssertEqual(c?.config.login.maxTrackedEntries, 1_000)
        XCTAssertEqual(c?.warnings.filter { $0.contains("environment") }, [])
        XCTAssertEqual(load("", env: ["GATEWAY_LOGIN_FAILURE_DELAY": "0"])?.config.login.failureDelayMs, 0)
        assertRefused("", env: ["GATEWAY_LOGIN_FAILURE_DELAY": "2m"], line: nil,
                      "GATEWAY_LOGIN_FAILURE_DELAY: login.failure_delay must be at most 60s (it is 120s)")
        assertRefused("", env: ["GATEWAY_LOGIN_MAX_FAILURES_PER_ADDRESS": "0"], line: nil,
                      "GATEWAY_LOGIN_MAX_FAILURES_PER_ADDRESS: login.max_failures_per_address must be between 1 and 1000000")
        assertRefused("", env: ["GATEWAY_LOGIN_MAX_FAILURES_PER_USER": "many"], line: nil,
                      "GATEWAY_LOGIN_MAX_FAILURES_PER_USER: login.max_failures_per_user must be an integer, not \"many\"")
        assertRefused("", env: ["GATEWAY_LOGIN_WINDOW": "0"], line: nil, "GATEWAY_LOGIN_WINDOW: login.window must be greater than 0")
        assertRefused("", env: ["GATEWAY_LOGIN_MAX_TRACKED": "10"], line: nil,
                      "GATEWAY_LOGIN_MAX_TRACKED: login.max_tracked must be between 100 and 10000000 (it is 10)")
    }

    // MARK: About

    func testAboutKeysAreReadIntoTheirFields() {
        let c = load("[about]\napp = \"my-core\"\nname = \"\"\nversion = \"16.20.1\"")?.config
        XCTAssertEqual(c?.about.app, "my-core")
        XCTAssertEqual(c?.about.name, "", "an empty name is allowed")
        XCTAssertEqual(c?.about.versionNumber, "16.20.1")
        let defaults = load("")?.config.about
        XCTAssertEqual(defaults?.app, "datarhei-core")
        XCTAssertEqual(defaults?.name, "gateway")
        XCTAssertEqual(defaults?.versionNumber, "16.16.0")
    }

    func testAboutChecks() {
        assertRefused("[about]\napp = \"\"", line: 2, "gateway.conf:2: about.app must not be empty")
        for bad in ["16.16", "16.16.0.1", "v16.16.0", "16.16.0-rc1", "16..0", "16.16.x", "", "١٦.16.0"] {
            assertRefused("[about]\n\nversion = \"\(bad)\"", line: 3, "about.version must be a version of three numbers like \"16.16.0\"")
        }
        assertRefused("about.version = 16", line: 1, "about.version must be a string, not an integer")
        XCTAssertEqual(load("about.version = \"0.0.0\"")?.config.about.versionNumber, "0.0.0")
    }

    func testAboutKeysHaveEnvironmentOverrides() {
        let c = load("[about]\nname = \"file\"", env: [
            "GATEWAY_ABOUT_APP": "datarhei-core", "GATEWAY_ABOUT_NAME": "edge-1", "GATEWAY_ABOUT_VERSION": "16.17.2",
        ])?.config
        XCTAssertEqual(c?.about.app, "datarhei-core")
        XCTAssertEqual(c?.about.name, "edge-1")
        XCTAssertEqual(c?.about.versionNumber, "16.17.2")
        assertRefused("", env: ["GATEWAY_ABOUT_VERSION": "sixteen"], line: nil,
                      "GATEWAY_ABOUT_VERSION: about.version must be a version of three numbers")
        assertRefused("", env: ["GATEWAY_ABOUT_APP": ""], line: nil, "GATEWAY_ABOUT_APP: about.app must not be empty")
    }

    // MARK: Users

    func testUsersAreReadWithTheirDefaults() {
        let users = load("""
            [[user]]
            name = "alice"
            password = '\(scryptHash)'
            [[user]]
            name = "bob"
            password = '\(pbkdf2Hash)'
            enabled = false
            must_change_password = true
            """)?.config.users
        XCTAssertEqual(users?.map(\.name), ["alice", "bob"], "file order")
        XCTAssertEqual(users?.map(\.password), [scryptHash, pbkdf2Hash])
        XCTAssertEqual(users?.map(\.enabled), [true, false])
        XCTAssertEqual(users?.map(\.mustChangePassword), [false, true])
        XCTAssertEqual(load("")?.config.users.count, 0)
    }

    func testUserNeedsANameAndAPassword() {
        assertRefused("\n[[user]]\npassword = '\(scryptHash)'", line: 2, "gateway.conf:2: [[user]] has no name")
        assertRefused("[[user]]\nname = \"alice\"\nenabled = true", line: 1, "[[user]] \"alice\" has no password")
        assertRefused("[[user]]\nname = \"alice\"\npassword = \"\"", line: 3, "user.password must not be empty")
        assertRefused("[[user]]\nname = \"\"\npassword = '\(scryptHash)'", line: 2, "user.name must not be empty")
    }

    func testUserNameHasNoControlCharactersAndAtMost256Bytes() {
        func user(_ name: String) -> String { "[[user]]\nname = \"\(name)\"\npassword = '\(scryptHash)'" }
        assertRefused(user("al\\tice"), line: 2, "user.name must not contain control characters")
        assertRefused(user("al\\u0000ice"), line: 2, "user.name must not contain control characters")
        assertRefused(user("al\\u007Fice"), line: 2, "user.name must not contain control characters")
        assertRefused(user("al\\u0085ice"), line: 2, "user.name must not contain control characters")
        XCTAssertEqual(load(user(String(repeating: "a", count: 256)))?.config.users.first?.name.utf8.count, 256)
        assertRefused(user(String(repeating: "a", count: 257)), line: 2, "user.name must be at most 256 bytes (it is 257)")
        // Bytes, not characters: 129 two-byte characters are 258 bytes.
        assertRefused(user(String(repeating: "é", count: 129)), line: 2, "user.name must be at most 256 bytes (it is 258)")
        XCTAssertEqual(load(user("Jörg Müller"))?.config.users.first?.name, "Jörg Müller")
    }

    func testDuplicateUserNameIsAnErrorNamingTheLine() {
        assertRefused("""
            [[user]]
            name = "alice"
            password = '\(scryptHash)'
            [[user]]
            name = "bob"
            password = '\(scryptHash)'
            [[user]]
            name = "alice"
            password = '\(pbkdf2Hash)'
            """, line: 7, "gateway.conf:7: user name \"alice\" is already used by the user at line 1")
    }

    func testUserNamedLikeTheAPIAuthUserIsAnError() {
        let text = "api.auth.username = \"admin\"\n[[user]]\nname = \"admin\"\npassword = '\(scryptHash)'"
        assertRefused(text, line: 2, "gateway.conf:2: user name \"admin\" is also api.auth.username")
        // Also when the api.auth user comes from the environment; and not when the environment renames it.
        assertRefused("\n[[user]]\nname = \"ops\"\npassword = '\(scryptHash)'", env: ["GATEWAY_API_AUTH_USERNAME": "ops"], line: 2,
                      "user name \"ops\" is also api.auth.username")
        XCTAssertEqual(load(text, env: ["GATEWAY_API_AUTH_USERNAME": "root"])?.config.users.map(\.name), ["admin"])
        // Names are compared exactly.
        XCTAssertNotNil(load("api.auth.username = \"admin\"\n[[user]]\nname = \"Admin\"\npassword = '\(scryptHash)'"))
    }

    func testUserPasswordThatStartsLikeAHashMustBeOne() {
        for bad in ["$scrypt$ln=15,r=8,p=1$...", "$scrypt$", "$pbkdf2-sha256$i=600000$c2FsdA$aGFzaA",
                    "$scrypt$ln=5,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            let text = "[[user]]\nname = \"alice\"\n\npassword = '\(bad)'"
            assertRefused(text, line: 4, "gateway.conf:4: user.password of user \"alice\" starts like a PHC hash but is not one")
            XCTAssertFalse(refusal(text)?.description.contains(bad) ?? true, "the password is not echoed")
        }
    }

    func testUserPlaintextPasswordIsAllowedWithAWarningNamingTheUser() {
        let loaded = load("""
            [[user]]
            name = "alice"
            password = "correct horse"
            [[user]]
            name = "bob"
            password = '\(scryptHash)'
            """)
        XCTAssertEqual(loaded?.config.users.first?.password, "correct horse")
        let plaintext = loaded?.warnings.filter { $0.contains("plaintext") } ?? []
        XCTAssertEqual(plaintext, ["the password of user \"alice\" is plaintext; store a hash from `gateway hash-password`"])
        XCTAssertFalse(loaded?.warnings.contains { $0.contains("correct horse") } ?? true, "the password is never shown")
        // A string that merely contains "$scrypt$" further in is plaintext, not a broken hash.
        XCTAssertEqual(load("[[user]]\nname = \"c\"\npassword = 'x$scrypt$'")?.config.users.first?.password, "x$scrypt$")
    }

    func testUserMaskedPasswordIsRefused() {
        assertRefused("[[user]]\nname = \"alice\"\npassword = \"********\"", line: 3,
                      "user.password of user \"alice\" is the mask \"********\" that check-config prints")
    }

    func testUserBlocksAreCheckedLikeRouteBlocks() {
        assertRefused("[[user]]\nname = \"alice\"\npasword = \"x\"", line: 3, "unknown key user.pasword; did you mean user.password?")
        assertRefused("[user]\nname = \"alice\"", line: 1, "user must be written as [[user]] sections")
        assertRefused("user = []", line: 1, "user must be written as [[user]] sections")
        assertRefused("[[users]]\nname = \"alice\"", line: 1, "unknown key users; did you mean user?")
        assertRefused("[[user]]\nname = \"alice\"\npassword = '\(scryptHash)'\nenabled = \"yes\"", line: 4, "user.enabled must be true or false")
        assertRefused("[[user]]\nname = \"alice\"\npassword = '\(scryptHash)'\nmust_change_password = 1", line: 4,
                      "user.must_change_password must be true or false")
        assertRefused("[[user]]\nname = 5", line: 2, "user.name must be a string, not an integer")
    }

    func testEnabledUserSilencesTheNobodyCanLogInWarning() {
        func nobody(_ w: [String]?) -> Bool { w?.contains { $0.contains("nobody can log in") } ?? false }
        let user = "[[user]]\nname = \"alice\"\npassword = '\(scryptHash)'"
        XCTAssertTrue(nobody(load("")?.warnings))
        XCTAssertFalse(nobody(load(user)?.warnings))
        XCTAssertTrue(nobody(load(user + "\nenabled = false")?.warnings), "a disabled user cannot log in")
        XCTAssertFalse(nobody(load(user + "\nenabled = false\n" + user.replacingOccurrences(of: "alice", with: "bob"))?.warnings))
        XCTAssertFalse(nobody(load("api.auth.username = \"admin\"\napi.auth.password = '\(scryptHash)'")?.warnings))
    }

    // MARK: Effective configuration with the new keys

    private var configWithUsersText: String {
        fullConfigText + """

            [login]
            failure_delay = 0
            max_failures_per_address = 3
            window = "90s"
            [about]
            name = "edge \\"1\\""
            version = "16.17.0"
            [[user]]
            name = "alice"
            password = '\(scryptHash)'
            [[user]]
            name = "bob"
            password = "plain text"
            enabled = false
            must_change_password = true
            """
    }

    /// `text` with each `[[user]]` block's password line replaced by the next of `passwords`: what
    /// an operator does with check-config output, as users' passwords have no environment variables.
    private func withUserPasswords(_ text: String, _ passwords: [String]) -> String {
        var remaining = passwords[...]
        var inUser = false
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            if line.hasPrefix("[") { inUser = line == "[[user]]" }
            guard inUser, line.hasPrefix("password = "), let next = remaining.popFirst() else { return String(line) }
            return "password = \(TOMLReader.quoted(next))"
        }.joined(separator: "\n")
    }

    func testEffectiveTextShowsLoginAboutAndMaskedUsers() {
        guard let config = load(configWithUsersText)?.config else { return }
        let text = ConfigLoader.effectiveText(config)
        XCTAssertFalse(text.contains("scrypt"), text)
        XCTAssertFalse(text.contains("plain text"), text)
        let lines = settingLines(text)
        XCTAssertTrue(lines.contains("failure_delay = \"0s\""), "\(lines)")
        XCTAssertTrue(lines.contains("window = \"90s\""), "\(lines)")
        XCTAssertTrue(lines.contains("max_tracked = 100000"), "\(lines)")
        XCTAssertTrue(lines.contains("version = \"16.17.0\""), "\(lines)")
        guard let first = lines.firstIndex(of: "[[user]]") else { return XCTFail(text) }
        XCTAssertEqual(Array(lines[first...].prefix(10)), [
            "[[user]]", "name = \"alice\"", "password = \"********\"", "enabled = true", "must_change_password = false",
            "[[user]]", "name = \"bob\"", "password = \"********\"", "enabled = false", "must_change_password = true",
        ])
        XCTAssertTrue(text.contains("\n[[user]]\nname = \"alice\"                      # the name to log in with\npassword = \"********\"               # a PHC hash"), text)
        XCTAssertEqual(lines.firstIndex(of: "[login]").map { $0 < first }, true, "users after the scalar keys")
        XCTAssertEqual(lines.firstIndex(of: "[[route]]").map { $0 > first }, true, "and before the routes")
        // The effective text of a config without users has no [[user]] block.
        XCTAssertFalse(ConfigLoader.effectiveText(GatewayConfig()).contains("[[user]]"))
    }

    func testEffectiveTextWithUsersRoundTrips() {
        guard let original = load(configWithUsersText)?.config else { return }
        let text = ConfigLoader.effectiveText(original)
        let env = ["GATEWAY_API_AUTH_PASSWORD": original.auth.password, "GATEWAY_API_AUTH_JWT_SECRET": original.tokens.secret]
        // Loaded back as printed, the masked user passwords are refused, naming the first user's line.
        guard let e = refusal(text, env: env) else { return }
        XCTAssertTrue(e.description.contains("user.password of user \"alice\" is the mask"), "\(e)")
        XCTAssertNotNil(e.line)
        // With the passwords written back, everything round-trips.
        let restored = withUserPasswords(text, original.users.map(\.password))
        guard let reloaded = load(restored, env: env)?.config else { return }
        XCTAssertEqual(ConfigLoader.effectiveText(reloaded), text)
        XCTAssertEqual(reloaded.users.map(\.name), ["alice", "bob"])
        XCTAssertEqual(reloaded.users.map(\.password), [scryptHash, "plain text"])
        XCTAssertEqual(reloaded.users.map(\.enabled), [true, false])
        XCTAssertEqual(reloaded.users.map(\.mustChangePassword), [false, true])
        XCTAssertEqual(reloaded.login.failureDelayMs, 0)
        XCTAssertEqual(reloaded.login.maxFailuresPerAddress, 3)
        XCTAssertEqual(reloaded.login.windowMs, 90_000)
        XCTAssertEqual(reloaded.about.name, "edge \"1\"")
        XCTAssertEqual(reloaded.about.versionNumber, "16.17.0")
        XCTAssertEqual(reloaded.routes.map(\.prefix), ["/static/files/", "/api/v3/"])
    }

    // MARK: The example file's new sections

    func testExampleFileDocumentsLoginAboutAndACommentedOutUser() throws {
        let text = try String(contentsOfFile: examplePath, encoding: .utf8)
        let loaded = try ConfigLoader.load(path: examplePath, environment: [:])
        XCTAssertEqual(loaded.config.users.count, 0)
        XCTAssertEqual(loaded.config.login.failureDelayMs, GatewayConfig.Login().failureDelayMs)
        XCTAssertEqual(loaded.config.about.versionNumber, GatewayConfig.About().versionNumber)
        XCTAssertTrue(text.contains("gateway hash-password"))
        // The [[user]] example, uncommented as it stands, is refused: its "..." is no usable hash.
        var uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            for key in ["[[user]]", "name =", "password =", "enabled =", "must_change_password ="] where line.hasPrefix("# " + key) {
                return String(line.dropFirst(2))
            }
            return String(line)
        }.joined(separator: "\n")
        XCTAssertNotEqual(uncommented, text)
        guard let e = refusal(uncommented) else { return }
        XCTAssertTrue(e.description.contains("user.password of user \"operator\" starts like a PHC hash but is not one"), "\(e)")
        // With a real hash in its place, the example user loads.
        uncommented = uncommented.replacingOccurrences(of: "\"$scrypt$ln=15,r=8,p=1$...\"", with: "'\(scryptHash)'")
        let users = load(uncommented)?.config.users
        XCTAssertEqual(users?.map(\.name), ["operator"])
        XCTAssertEqual(users?.first?.enabled, true)
        XCTAssertEqual(users?.first?.mustChangePassword, false)
    }
}
