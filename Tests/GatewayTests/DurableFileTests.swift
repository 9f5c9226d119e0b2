import Foundation
import Glibc
import XCTest
@testable import Gateway

/// The keys file and the revocation journal are written through `DurableFile`: replaced whole or
/// not at all, private to the gateway's user, and never blocked by what a crash left behind.
final class DurableFileTests: XCTestCase {
    private var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "durable-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    private func mode(_ path: String) -> mode_t {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        return st.st_mode & 0o777
    }

    func testReplaceWritesTheWholeFileOwnerOnlyAndLeavesNoTemporary() throws {
        let path = dir + "/keys.json"
        try DurableFile.replace(path, with: Array("one".utf8))
        try DurableFile.replace(path, with: Array("two".utf8))
        XCTAssertEqual(contents(path), "two")
        XCTAssertEqual(mode(path), 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["keys.json"])
    }

    func testATemporaryLeftByACrashedProcessWithTheSamePidNeitherBlocksNorIsTakenOver() throws {
        let path = dir + "/keys.json"
        let stale = path + ".tmp-\(getpid())"
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data("torn".utf8), attributes: [.posixPermissions: 0o644]))
        try DurableFile.replace(path, with: Array("whole".utf8))
        XCTAssertEqual(contents(path), "whole")
        XCTAssertEqual(mode(path), 0o600, "not the stale temporary's mode")
        XCTAssertEqual(contents(stale), "torn", "another writer's temporary is never touched")
    }

    func testAppendsFollowAFileReplacedByAnotherProcess() throws {
        let path = dir + "/journal"
        let file = AppendOnlyFile(path: path)
        try file.append(Array("a\n".utf8))
        // Another process (the CLI, with no gateway answering) rewrites the journal.
        try DurableFile.replace(path, with: Array("b\n".utf8))
        try file.append(Array("c\n".utf8))
        XCTAssertEqual(contents(path), "b\nc\n", "the append landed in the file now at the path")
    }

    func testAReplaceThatCannotWriteLeavesTheOldFile() throws {
        let path = dir + "/missing-dir/keys.json"
        XCTAssertThrowsError(try DurableFile.replace(path, with: [1])) { error in
            XCTAssertTrue("\(error)".contains("cannot create"), "\(error)")
        }
    }

    func testAppendsSurviveARewriteAndLandInTheNewFile() throws {
        let path = dir + "/journal"
        let file = AppendOnlyFile(path: path)
        try file.append(Array("a\n".utf8))
        try file.append(Array("b\n".utf8))
        try file.rewrite { current in
            XCTAssertEqual(current.map { String(decoding: $0, as: UTF8.self) }, "a\nb\n")
            return Array("b\n".utf8)
        }
        try file.append(Array("c\n".utf8))
        XCTAssertEqual(contents(path), "b\nc\n")
        XCTAssertEqual(mode(path), 0o600)
        try file.rewrite { _ in nil }
        XCTAssertEqual(contents(path), "b\nc\n", "a rewrite that declines changes nothing")
    }

    func testOnlyOneHolderOfTheLockRunsItsBody() throws {
        let lock = dir + "/keys.json.lock"
        let inner = try DurableFile.withExclusiveLock(lock) { () -> Int? in
            // flock locks belong to the open file description: a second open is refused.
            try DurableFile.withExclusiveLock(lock) { 2 }
        }
        XCTAssertEqual(inner, .some(nil), "the outer body ran, the inner one was refused")
        XCTAssertEqual(try DurableFile.withExclusiveLock(lock) { 3 }, 3, "released afterwards")
    }
}
