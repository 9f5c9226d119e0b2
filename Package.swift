// swift-tools-version:6.0
// The gateway depends on the Swift toolchain and two system C libraries (OpenSSL 3, nghttp2)
// only: no Swift package from outside the toolchain, ever. See README.md, "Supply chain".
import PackageDescription

let package = Package(
    name: "gateway",
    products: [
        .executable(name: "gateway", targets: ["Gateway"]),
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
        .executableTarget(
            name: "Gateway",
            dependencies: ["TokenCore", "CGatewayShims"]
        ),
        .testTarget(name: "TokenCoreTests", dependencies: ["TokenCore"]),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "TokenCore", "CGatewayShims"]),
    ],
    swiftLanguageModes: [.v6]
)
