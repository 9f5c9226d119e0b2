// swift-tools-version:6.0
// The gateway depends on the Swift toolchain and two system C libraries (OpenSSL 3, nghttp2)
// only: no Swift package from outside the toolchain, ever. See README.md, "Supply chain".
import PackageDescription

/// One libFuzzer target per parser (Tests/Fuzz/<name>, corpora in Tests/Fuzz/corpus/<name>).
let fuzzTargets = ["FuzzRequestHead", "FuzzTarget", "FuzzResponseHead", "FuzzToken", "FuzzTOML", "FuzzJournal", "FuzzHTTP2Head", "FuzzJWKS", "FuzzRESP"]

let package = Package(
    name: "gateway",
    products: [
        .executable(name: "gateway", targets: ["GatewayCLI"]),
        .library(name: "TokenCore", targets: ["TokenCore"]),
    ],
    targets: [
        // The only C in the project: OpenSSL, nghttp2 and Linux headers, plus wrappers for the
        // macros and variadic calls Swift cannot import. Libraries as pkg-config names them
        // (`pkg-config --libs openssl libnghttp2`).
        .target(
            name: "CGatewayShims",
            linkerSettings: [
                .linkedLibrary("ssl"),
                .linkedLibrary("crypto"),
                .linkedLibrary("nghttp2"),
            ]
        ),
        .target(
            name: "TokenCore",
            dependencies: ["CGatewayShims"]
        ),
        // The gateway as a library (config, runtime, HTTP, proxy, auth, admin, commands), so
        // tests and fuzz targets import it; the executable is one line.
        .target(
            name: "Gateway",
            dependencies: ["TokenCore", "CGatewayShims"]
        ),
        .executableTarget(
            name: "GatewayCLI",
            dependencies: ["Gateway"]
        ),
        // Fuzz targets (deploy/fuzz.sh builds them with libFuzzer; a plain build replays files).
        .target(name: "FuzzSupport", path: "Tests/Fuzz/Support"),
    ] + fuzzTargets.map { name in
        .executableTarget(name: name, dependencies: ["FuzzSupport", "Gateway", "TokenCore", "CGatewayShims"],
                          path: "Tests/Fuzz/\(name)")
    } + [
        .testTarget(name: "TokenCoreTests", dependencies: ["TokenCore"]),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "TokenCore", "CGatewayShims"],
                    exclude: ["Support/h2client.py", "Support/tls_fixture.py"]),
    ],
    swiftLanguageModes: [.v6]
)
