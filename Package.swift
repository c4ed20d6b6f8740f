// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "RingProxy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ringproxy", targets: ["RingProxyCLI"]),
        .executable(name: "ringload", targets: ["RingLoad"]),
        .executable(name: "pick-cost", targets: ["PickCost"]),
        .library(name: "RingProxy", targets: ["RingProxy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        .systemLibrary(
            name: "CAres",
            pkgConfig: "libcares",
            providers: [.apt(["libc-ares-dev"])]
        ),
        // The floors, each depending only on the ones below (ARCHITECTURE.md):
        // CURing → RingSystem (sockets, errno, clock, locks, threads) → RingIO (the ring: the unsafe floor)
        // → RingProxy (tunnel, worker, balance, config, ops) → the ringproxy CLI.
        .target(
            name: "RingSystem",
            dependencies: ["CURing"]
        ),
        .target(
            name: "RingIO",
            dependencies: ["CURing", "RingSystem"]
        ),
        // Beside RingIO on the system floor: the c-ares resolver (a system service, and C callbacks with raw
        // pointers), so that ringload, which needs no DNS, does not link it.
        .target(
            name: "RingDNS",
            dependencies: ["CAres", "RingSystem"]
        ),
        .target(
            name: "RingProxy",
            dependencies: [
                "CURing",
                "RingSystem",
                "RingIO",
                "RingDNS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "RingProxyCLI",
            dependencies: [
                "RingProxy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "RingLoad",
            // The ring and the system floor only: ringload links neither the config loader nor Foundation.
            dependencies: [
                "CURing",
                "RingSystem",
                "RingIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "bench/RingLoad"
        ),
        .executableTarget(
            name: "PickCost",
            dependencies: ["RingProxy"],
            path: "bench/PickCost"
        ),
        // Unit tests: seconds, no binaries, no sockets beyond the process (tunnel, timer wheel, slot lists,
        // balancers, config). `make test-unit` runs only these.
        .testTarget(
            name: "RingProxyUnitTests",
            dependencies: ["RingSystem", "RingIO", "RingDNS", "RingProxy"],
            path: "Tests/Unit",
            exclude: ["Routing/Captures"]  // recorded ClientHellos and PROXY headers, read by the tests at run time
        ),
        // System tests by area (forwarding, pools, operations, faults, bad input): real sockets, real rings,
        // the real binaries. The executables are dependencies so that `swift test` builds them.
        .testTarget(
            name: "RingProxySystemTests",
            dependencies: ["RingSystem", "RingIO", "RingDNS", "RingProxy", "RingProxyCLI", "RingLoad"],
            path: "Tests/System"
        ),
    ]
)

// `make fuzz` and `make fuzz-routing` set RINGPROXY_FUZZ=1 to add the libFuzzer targets (Tests/Fuzz): the
// config loader, the ClientHello reader, the PROXY header reader. They have no `main` of their own
// (libFuzzer's is linked in by `--sanitize=fuzzer`), so ordinary builds never see them.
if Context.environment["RINGPROXY_FUZZ"] != nil {
    for (product, target) in [("config-fuzz", "ConfigFuzz"), ("clienthello-fuzz", "ClientHelloFuzz"), ("proxyheader-fuzz", "ProxyHeaderFuzz")] {
        package.products.append(.executable(name: product, targets: [target]))
        package.targets.append(.executableTarget(
            name: target,
            dependencies: ["RingProxy"],
            path: "Tests/Fuzz/\(target)",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ))
    }
}
