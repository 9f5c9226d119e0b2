import Foundation
import XCTest
@testable import Gateway

/// The gateway's Redis client against a real redis-server on loopback: RESP3, authentication
/// (password and ACL user), database selection, pipelining, TLS with a CA of the test's own, and
/// deadlines that hold when Redis does not answer.
final class RedisConnectionTests: XCTestCase {
    private func connect(_ redis: RedisServer, db: Int = 0, credentials: (user: String?, password: String)? = nil,
                         timeoutMs: Int = 2_000) throws -> RedisConnection {
        try RedisConnection(try XCTUnwrap(RedisEndpoint("redis://127.0.0.1:\(redis.port)/\(db)")), credentials: credentials,
                            trust: nil, timeoutMs: timeoutMs)
    }

    func testEndpointsAreReadAsRedisWritesThem() {
        XCTAssertEqual(RedisEndpoint("redis://cache.internal:6380/2").map { [$0.host, "\($0.port)", "\($0.db)", "\($0.tls)"] },
                       ["cache.internal", "6380", "2", "false"])
        XCTAssertEqual(RedisEndpoint("rediss://[::1]:6379").map { [$0.host, "\($0.db)", "\($0.tls)"] }, ["::1", "0", "true"])
        XCTAssertEqual(RedisEndpoint("redis://localhost").map(\.port), 6379)
        for bad in ["http://h:1", "redis://user:pw@h:1", "redis://h:1/x", "redis://h:99999", "redis://h:1/2?x=1", ""] {
            XCTAssertNil(RedisEndpoint(bad), bad)
        }
    }

    func testCommandsAndAPipelineGoInOneRoundTripOverRESP3() throws {
        let redis = try RedisServer()
        let c = try connect(redis)
        XCTAssertEqual(c.protocolVersion, 3)
        XCTAssertEqual(try c.call(["SET", "k", "v v"], timeoutMs: 1_000), .simple("OK"))
        XCTAssertEqual(try c.call(["GET", "k"], timeoutMs: 1_000), .bulk(Array("v v".utf8)))
        XCTAssertEqual(try c.call(["GET", "absent"], timeoutMs: 1_000), .null)
        let replies = try c.pipeline((1...100).map { _ in ["INCR", "n"] }, timeoutMs: 2_000)
        XCTAssertEqual(replies, (1...100).map { .integer(Int64($0)) })
        XCTAssertThrowsError(try c.call(["NOSUCHCOMMAND"], timeoutMs: 1_000)) { XCTAssertTrue("\($0)".contains("unknown command"), "\($0)") }
    }

    func testTheDatabaseIsSelectedOnConnect() throws {
        let redis = try RedisServer()
        let three = try connect(redis, db: 3)
        _ = try three.call(["SET", "only-in-3", "x"], timeoutMs: 1_000)
        XCTAssertEqual(try connect(redis).call(["EXISTS", "only-in-3"], timeoutMs: 1_000), .integer(0))
        XCTAssertEqual(try connect(redis, db: 3).call(["EXISTS", "only-in-3"], timeoutMs: 1_000), .integer(1))
    }

    func testAPasswordAndAnACLUserAreRequiredWhenRedisSaysSo() throws {
        let redis = try RedisServer(arguments: ["--requirepass", "s3cret-redis"])
        XCTAssertThrowsError(try connect(redis).call(["PING"], timeoutMs: 1_000)) { XCTAssertTrue("\($0)".contains("NOAUTH"), "\($0)") }
        XCTAssertThrowsError(try connect(redis, credentials: (nil, "wrong"))) { XCTAssertTrue("\($0)".contains("WRONGPASS"), "\($0)") }
        XCTAssertEqual(try connect(redis, credentials: (nil, "s3cret-redis")).call(["PING"], timeoutMs: 1_000), .simple("PONG"))
        let admin = try connect(redis, credentials: (nil, "s3cret-redis"))
        _ = try admin.call(["ACL", "SETUSER", "gateway", "on", ">gw-password", "~gateway:*", "+@all"], timeoutMs: 1_000)
        let user = try connect(redis, credentials: ("gateway", "gw-password"))
        XCTAssertEqual(try user.call(["SET", "gateway:x", "1"], timeoutMs: 1_000), .simple("OK"))
        XCTAssertThrowsError(try user.call(["SET", "other:x", "1"], timeoutMs: 1_000)) { XCTAssertTrue("\($0)".contains("NOPERM"), "\($0)") }
    }

    func testACallRedisDoesNotAnswerInTimeFailsAtItsDeadline() throws {
        let redis = try RedisServer()
        let c = try connect(redis)
        let started = Date()
        XCTAssertThrowsError(try c.call(["BLPOP", "never", "5"], timeoutMs: 300)) { XCTAssertEqual($0 as? RedisError, .timeout) }
        XCTAssertLessThan(Date().timeIntervalSince(started), 4, "the deadline, not Redis's 5 s")
        XCTAssertTrue(c.failed, "a connection whose reply is still owed is not used again")
    }

    func testAStoppedRedisIsAnErrorNotAHang() throws {
        let redis = try RedisServer()
        let c = try connect(redis)
        redis.stop()
        XCTAssertThrowsError(try c.call(["PING"], timeoutMs: 1_000)) { XCTAssertEqual($0 as? RedisError, .closed) }
        XCTAssertThrowsError(try connect(redis)) { error in
            guard case .connect? = error as? RedisError else { return XCTFail("\(error)") }
        }
    }

    func testStreamsRoundTrip() throws {
        let redis = try RedisServer()
        let c = try connect(redis)
        guard case let .bulk(id) = try c.call(["XADD", "gateway:revocations", "*", "kind", "jti", "value", "abc"], timeoutMs: 1_000) else {
            return XCTFail("XADD answers an id")
        }
        let read = try c.call(["XREAD", "COUNT", "10", "STREAMS", "gateway:revocations", "0"], timeoutMs: 1_000)
        guard case let .map(streams) = read, let entries = streams.first?.1, case let .array(list) = entries,
              case let .array(entry)? = list.first else { return XCTFail("\(read)") }
        XCTAssertEqual(entry.first, .bulk(id))
        XCTAssertEqual(entry.last, .array(["kind", "jti", "value", "abc"].map { .bulk(Array($0.utf8)) }))
    }

    func testTLSIsVerifiedAgainstTheGivenCA() throws {
        let pki = try TempDir()
        try TLSFixture.makePKI(in: pki)
        let redis = try RedisServer(arguments: ["--tls-cert-file", pki.path("server.pem"), "--tls-key-file", pki.path("server.key"),
                                                "--tls-ca-cert-file", pki.path("ca.pem"), "--tls-auth-clients", "no"], tls: true)
        let endpoint = try XCTUnwrap(RedisEndpoint("rediss://localhost:\(redis.port)"))
        let trusted = try RedisConnection(endpoint, credentials: nil, trust: TLSClientContext(caFile: pki.path("ca.pem")), timeoutMs: 2_000)
        XCTAssertEqual(try trusted.call(["PING"], timeoutMs: 1_000), .simple("PONG"))
        XCTAssertThrowsError(try RedisConnection(endpoint, credentials: nil, trust: TLSClientContext(caFile: pki.path("other-ca.pem")),
                                                 timeoutMs: 2_000)) { XCTAssertTrue("\($0)".contains("certificate refused"), "\($0)") }
    }
}
