/// Named pools and the listeners' routing keys (issue 12).
extension ConfigValidation {
    /// `[pools.NAME]`, by name.
    mutating func namedPools(_ specs: [PoolSpec]?, defaultBalance: BalanceAlgorithm) -> [String: NamedPool] {
        var pools: [String: NamedPool] = [:]
        for spec in specs ?? [] {
            let pool = backends(spec.backends, key: "\(spec.source.key).backends", hint: "add backends to [\(spec.source.key)]")
            pools[spec.name] = NamedPool(
                name: spec.name, balance: choice(spec.balance, BalanceAlgorithm.self) ?? defaultBalance,
                backends: pool.backends, names: pool.names)
        }
        return pools
    }

    mutating func pool(_ name: Setting<String>, in pools: [String: NamedPool]) -> NamedPool? {
        guard let pool = pools[name.value] else {
            let known = pools.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            fail(name.source, "no pool '\(name.value)': declare [pools.\(name.value)]\(known.isEmpty ? "" : " (known: \(known))")")
            return nil
        }
        return pool
    }

    /// The routing stage of a listener, or nil when it sets none of the keys that need one.
    mutating func routing(_ spec: ListenerRoutingSpec, hasDefaultPool: Bool, pools: [String: NamedPool]) -> ListenerRouting? {
        guard spec.needsStage else { return nil }
        var routing = ListenerRouting()
        routing.hasDefaultPool = hasDefaultPool
        for route in spec.routes ?? [] {
            guard let poolName = route.pool else {
                missing(route.source, "missing pool: the [pools.NAME] this route goes to", key: route.source.key + ".pool")
                continue
            }
            let patterns = route.sni.map { names in
                names.value.compactMap { text -> ServerNamePattern? in
                    guard let pattern = ServerNamePattern(text) else {
                        fail(names.source, "expected a server name like \"api.example.com\" or \"*.example.com\", got '\(text)'")
                        return nil
                    }
                    return pattern
                }
            } ?? []
            let alpn = route.alpn?.value ?? []
            if let bad = alpn.first(where: { $0.isEmpty || $0.utf8.count > 255 }), let source = route.alpn?.source {
                fail(source, "expected ALPN protocol names of 1 to 255 bytes (like \"h2\"), got '\(bad)'")
            }
            guard let pool = pool(poolName, in: pools) else { continue }
            routing.routes.append(.init(serverNames: patterns, alpn: alpn, pool: pool))
        }
        routing.acceptProxy = blocks(spec.acceptProxy)
        routing.allow = blocks(spec.allow)
        routing.deny = blocks(spec.deny)
        routing.maxConnectionsPerClient = range(
            spec.maxConnectionsPerClient, ListenerRouting.perClientLimits, what: "a connection count (0 = no limit)") ?? 0
        routing.newConnectionsPerClient = range(
            spec.newConnectionsPerClient, ListenerRouting.perClientLimits, what: "a rate per second (0 = no limit)") ?? 0
        routing.newConnectionsBurst = range(
            spec.newConnectionsBurst, ListenerRouting.perClientLimits, what: "a burst size") ?? routing.newConnectionsPerClient
        if let burst = spec.newConnectionsBurst {
            if routing.newConnectionsPerClient == 0 {
                fail(burst.source, "new_connections_burst needs new_connections_per_client")
            } else if burst.value < 1 {
                fail(burst.source, "expected a burst of at least 1")
            }
        }
        routing.prereadMax = range(spec.prereadMax, ListenerRouting.prereadMaxLimits, what: "a size in bytes")
            ?? ListenerRouting.defaultPrereadMax
        routing.prereadTimeout = positive(spec.prereadTimeout) ?? ListenerRouting.defaultPrereadTimeout
        return routing
    }

    /// CIDR blocks (`10.0.0.0/8`, `::1/128`); a bare address is a block of one.
    mutating func blocks(_ setting: Setting<[String]>?) -> AddressBlockList {
        guard let setting else { return AddressBlockList([]) }
        return AddressBlockList(setting.value.compactMap { text in
            guard let block = AddressBlock(text) else {
                fail(setting.source, "expected an address block like \"10.0.0.0/8\" or \"::1/128\", got '\(text)'")
                return nil
            }
            return block
        })
    }
}
