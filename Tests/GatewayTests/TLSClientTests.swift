import CGatewayShims
import Glibc
import XCTest
@testable import Gateway

/// The gateway's own TLS client (for HTTPS upstreams and an identity provider's keys), over
/// memory BIOs as the loop drives it, against the gateway's TLS server on a socket pair: no
/// network, both ends non-blocking.
final class TLSClientTests: XCTestCase {
    private var dir: TempDir!
    private var cert = "", key = ""
    private let pool = BufferPool(bufferSize: 16_384, largeSize: 65_536)

    override func setUpWithError() throws {
        dir = try TempDir()
        cert = dir.path("cert.pem")
        key = dir.path("key.pem")
        XCTAssertEqual(gw_tls_self_signed(cert, key, "localhost", 1), 1)
    }

    /// Runs both ends until the client has the server's "pong" (true) or an end fails (false).
    private func exchange(host: String, caFile: String?) throws -> (ok: Bool, verify: Int) {
        let server = try XCTUnwrap(TLSSession(context: try TLSContext(certFile: cert, keyFile: key, tls13Only: false, offerHTTP2: false),
                                              buffers: pool))
        let client = try XCTUnwrap(TLSSession(client: try TLSClientContext(caFile: caFile), host: host, buffers: pool))
        let (a, b) = try Socket.pair()
        defer { a.close(); b.close() }
        var toServer = pool.take(), atServer = pool.take(), toClient = pool.take(), atClient = pool.take()
        defer { for buf in [toServer, atServer, toClient, atClient] { pool.release(buf) } }
        _ = toServer.append("ping")
        _ = toClient.append("pong")
        for _ in 0..<100 {
            guard client.write(a, from: &toServer) != nil, server.read(b, into: &atServer) != nil,
                  server.write(b, from: &toClient) != nil, client.read(a, into: &atClient) != nil else {
                return (false, client.verifyResult)
            }
            if Array(atClient.readable) == Array("pong".utf8) {
                XCTAssertEqual(Array(atServer.readable), Array("ping".utf8))
                return (true, client.verifyResult)
            }
        }
        XCTFail("no end after 100 rounds")
        return (false, client.verifyResult)
    }

    func testAServerWhoseCertificateChainsToTheCAAndNamesTheHostIsSpokenTo() throws {
        let r = try exchange(host: "localhost", caFile: cert)
        XCTAssertTrue(r.ok)
        XCTAssertEqual(r.verify, Int(X509_V_OK))
    }

    func testAnotherHostNameIsRefused() throws {
        let r = try exchange(host: "example.com", caFile: cert)
        XCTAssertFalse(r.ok)
        XCTAssertEqual(r.verify, Int(X509_V_ERR_HOSTNAME_MISMATCH))
    }

    func testAnAddressMustBeInTheCertificatesIPEntries() throws {
        let r = try exchange(host: "127.0.0.1", caFile: cert)
        XCTAssertFalse(r.ok, "the certificate is for localhost only")
        XCTAssertEqual(r.verify, Int(X509_V_ERR_IP_ADDRESS_MISMATCH))
    }

    func testAnAddressInTheCertificatesIPEntriesIsSpokenTo() throws {
        XCTAssertEqual(gw_tls_self_signed(cert, key, "127.0.0.1", 1), 1)
        let r = try exchange(host: "127.0.0.1", caFile: cert)
        XCTAssertTrue(r.ok)
        XCTAssertEqual(r.verify, Int(X509_V_OK))
    }

    func testAWildcardStandsForAWholeLabelOnly() throws {
        XCTAssertEqual(gw_tls_self_signed(cert, key, "*.example.com", 1), 1)
        XCTAssertTrue(try exchange(host: "api.example.com", caFile: cert).ok)
        XCTAssertFalse(try exchange(host: "a.b.example.com", caFile: cert).ok, "one label, not two")
        XCTAssertEqual(gw_tls_self_signed(cert, key, "f*.example.com", 1), 1)
        let partial = try exchange(host: "foo.example.com", caFile: cert)
        XCTAssertFalse(partial.ok, "no partial-label wildcard")
        XCTAssertEqual(partial.verify, Int(X509_V_ERR_HOSTNAME_MISMATCH))
    }

    func testACertificateTheSystemStoreDoesNotTrustIsRefused() throws {
        let r = try exchange(host: "localhost", caFile: nil)
        XCTAssertFalse(r.ok)
        XCTAssertEqual(r.verify, Int(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT))
    }

    func testAMissingCAFileIsAClearError() {
        XCTAssertThrowsError(try TLSClientContext(caFile: dir.path("none.pem"))) { error in
            XCTAssertTrue("\(error)".contains("cannot load the CA file"), "\(error)")
        }
    }
}
