import Foundation
import Glibc

/// nginx with its stream module, as a test's real peer: started in a folder of its own with the `stream` servers
/// the test writes; `stop()` ends it (SIGTERM) and removes the folder.
final class StreamNginx {
    private let process: BuiltBinary.Running
    private let folder: String

    /// `servers`: the `server { ... }` blocks inside `stream { }`.
    init(servers: String) throws {
        let nginx = try requireTool(["/usr/sbin/nginx"], install: "apt-get install nginx libnginx-mod-stream")
        try requireFile("/usr/lib/nginx/modules/ngx_stream_module.so", install: "apt-get install libnginx-mod-stream")
        let folder = NSTemporaryDirectory() + "ringproxy-nginx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        do {
            try """
                load_module /usr/lib/nginx/modules/ngx_stream_module.so;
                daemon off;
                master_process off;
                pid \(folder)/nginx.pid;
                error_log \(folder)/error.log;
                events { worker_connections 64; }
                stream {
                \(servers)
                }
                """.write(toFile: "\(folder)/nginx.conf", atomically: true, encoding: .utf8)
            process = try BuiltBinary.Running(executable: nginx, arguments: [nginx, "-c", "\(folder)/nginx.conf", "-p", folder])
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
        self.folder = folder
    }

    func stop() {
        process.signal(SIGTERM)
        _ = process.finish()
        try? FileManager.default.removeItem(atPath: folder)
    }
}
