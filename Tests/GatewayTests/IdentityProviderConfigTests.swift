import XCTest
@testable import Gateway

/// `[api.auth.auth0]` and its tenants as gateway.conf writes them: read, printed back, and every
/// mistake explained with its line.
final class IdentityProviderConfigTests: XCTestCase {
    private func config(_ tenant: String, enable: Bool = true, extra: String = "") -> String {
        """
        \(extra)
        [api.auth.auth0]
        enable = \(enable)

        [[api.auth.auth0.tenants]]
        \(tenant)
        """
    }

    private func refusal(_ text: String) -> String {
        do {
            _ = try ConfigLoader.load(text: text, fileName: "gateway.conf", environment: [:])
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testATenantIsReadWithDatarheisNamesAndPrintedBack() throws {
        let loaded = try ConfigLoader.load(text: config("""
            domain = "example.eu.auth0.com"
            audience = "https://api.example.com"
            clientid = "abc123"
            users = ["auth0|61f0", "auth0|77aa"]
            algorithms = ["RS256"]
            """), fileName: "gateway.conf", environment: [:])
        let idp = loaded.config.identityProviders
        XCTAssertTrue(idp.enable)
        XCTAssertEqual(idp.tenants.count, 1)
        XCTAssertEqual(idp.tenants[0].effectiveIssuer, "https://example.eu.auth0.com/")
        XCTAssertEqual(idp.tenants[0].users, ["auth0|61f0", "auth0|77aa"])
        let text = ConfigLoader.effectiveText(loaded.config)
        XCTAssertTrue(text.contains("[[api.auth.auth0.tenants]]"), text)
        XCTAssertTrue(text.contains("clientid = \"abc123\""), text)
        let again = try ConfigLoader.load(text: text, fileName: "effective", environment: [:])
        XCTAssertEqual(again.config.identityProviders.tenants.first?.users, ["auth0|61f0", "auth0|77aa"])
    }

    func testEveryMistakeIsExplained() {
        let cases: [(String, String)] = [
            (config("audience = \"a\""), "has neither domain nor issuer"),
            (config("domain = \"example.com\""), "has no audience"),
            (config("domain = \"https://example.com\"\naudience = \"a\""), "domain must be a host name with an optional :port"),
            (config("domain = \"example.com/tenant\"\naudience = \"a\""), "domain must be a host name"),
            (config("issuer = \"http://example.com/\"\naudience = \"a\""), "issuer must be an https:// URL"),
            (config("domain = \"example.com\"\naudience = \"a\"\njwks_url = \"http://example.com/keys\""), "jwks_url must be an https:// URL"),
            (config("domain = \"example.com\"\naudience = \"a\"\nalgorithms = [\"HS256\"]"), "must list RS256, RS384, RS512, ES256 or ES384"),
            (config("domain = \"example.com\"\naudience = \"a\"\nalgorithms = []"), "algorithms must list at least one"),
            (config("domain = \"example.com\"\naudience = \"a\"\nusers = [\"\"]"), "must list subjects of 1 to 256 bytes"),
            (config("domain = \"example.com\"\naudience = \"a\"\nuser = [\"x\"]"), "did you mean api.auth.auth0.tenants.users?"),
            (config("domain = \"example.com\"\naudience = \"a\"\n\n[[api.auth.auth0.tenants]]\nissuer = \"https://example.com/\"\naudience = \"b\""),
             "is also the issuer of the tenant at line"),
            (config("domain = \"example.com\"\naudience = \"a\"", extra: "[api.auth]\nenable = false\n[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n"),
             "api.auth.auth0.enable needs api.auth.enable = true"),
            ("[api.auth.auth0]\nenable = true", "there is no [[api.auth.auth0.tenants]] section"),
            (config("domain = \"example.com\"\naudience = \"a\"\nusers = [\"*\", \"auth0|x\"]"), "users lists \"*\" beside names"),
            ("[[route]]\nprefix = \"/a/\"\nupstream = \"http://127.0.0.1:1\"\naccept_idp_tokens = true", "no identity provider is on"),
        ]
        for (text, fragment) in cases {
            let said = refusal(text)
            XCTAssertTrue(said.contains(fragment), "\(fragment): \(said)")
        }
    }

    func testHTTPSURLsAreTakenApartStrictly() {
        XCTAssertEqual(HTTPSLocation("https://idp.example.com:8443/realms/x?v=1").map { [$0.host, "\($0.port)", $0.path] },
                       ["idp.example.com", "8443", "/realms/x?v=1"])
        XCTAssertEqual(HTTPSLocation("https://[::1]/keys").map(\.hostPort), "[::1]:443")
        for bad in ["http://h/", "https://", "https://u@h/", "https://h:0/", "https://h:x/", "https://\\::1]:9443/keys",
                    "https://a:b:1/", "https://[g::1]/", "https://h /", "https://h/#f"] {
            XCTAssertNil(HTTPSLocation(bad), bad)
        }
    }

    func testATenantWithNoUsersIsWarnedAbout() throws {
        let loaded = try ConfigLoader.load(text: config("domain = \"example.com\"\naudience = \"a\""), fileName: "gateway.conf", environment: [:])
        XCTAssertTrue(loaded.warnings.contains { $0.contains("lists no users: nobody can sign in with it") }, "\(loaded.warnings)")
    }

    func testTenantsOfADisabledSectionChangeNothing() throws {
        let loaded = try ConfigLoader.load(text: config("domain = \"example.com\"\naudience = \"a\"", enable: false),
                                           fileName: "gateway.conf", environment: [:])
        let state = try GatewayState(config: loaded.config, ring: .single(secret: Array(repeating: 0x61, count: 32)), revocations: .init())
        XCTAssertTrue(state.idpTenants.isEmpty)
        XCTAssertEqual(state.about.auths, [])
    }
}
