import Foundation
import XCTest

/// Whether the suite runs under CI (`CI=true`, as GitHub Actions, GitLab and .ci/run set it).
var runningUnderCI: Bool { ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true" }

/// The first of `paths` that is an executable file, or the test cannot run: skipped on a developer's machine,
/// a failure under `CI=true` (where .ci/run installs every tool the suite looks for, so a skip there would
/// hide a test that never runs).
@discardableResult
func requireTool(_ paths: [String], install: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    if let found = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
    try missingRequirement("\(paths[0]) is not installed (\(install))", file: file, line: line)
    return ""
}

/// A file the test needs (a module, a library) that a package provides; as `requireTool`.
func requireFile(_ path: String, install: String, file: StaticString = #filePath, line: UInt = #line) throws {
    if FileManager.default.fileExists(atPath: path) { return }
    try missingRequirement("\(path) is missing (\(install))", file: file, line: line)
}

/// Skips the test, or under `CI=true` fails it.
func missingRequirement(_ reason: String, file: StaticString = #filePath, line: UInt = #line) throws {
    if runningUnderCI {
        XCTFail("CI=true and \(reason): the test cannot run, and CI must not skip it silently", file: file, line: line)
        throw TestFailure("required tool missing under CI: \(reason)")
    }
    throw XCTSkip(reason)
}
