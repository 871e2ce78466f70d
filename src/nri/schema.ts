/**
 * nri/netqos-nri.proto as a protobufjs JSON descriptor: the schema the daemon decodes NRI and
 * ttrpc messages with. A TS module rather than the .proto file read at run time, because the
 * daemon is one esbuild bundle installed alone (/opt/nri/plugins/10-netqos): a file beside it
 * would need a path to be found by, and parsing .proto text needs protobufjs's full build (its
 * parser) where the light build suffices. test/unit/nri-schema.test.ts parses the .proto and
 * checks that it equals this descriptor, so the two never drift apart.
 */
/** protobufjs's INamespace (loosely typed: its typings do not admit map fields here) */
export const NRI_SCHEMA: Record<string, unknown> = {
  nested: {
    netqos: {
      nested: {
        nri: {
          nested: {
            TtrpcRequest: {
              fields: {
                service: { type: 'string', id: 1 },
                method: { type: 'string', id: 2 },
                payload: { type: 'bytes', id: 3 },
                timeout_nano: { type: 'int64', id: 4 },
                metadata: { rule: 'repeated', type: 'KeyValue', id: 5 },
              },
            },
            KeyValue: {
              fields: {
                key: { type: 'string', id: 1 },
                value: { type: 'string', id: 2 },
              },
            },
            TtrpcResponse: {
              fields: {
                status: { type: 'RpcStatus', id: 1 },
                payload: { type: 'bytes', id: 2 },
              },
            },
            RpcStatus: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
              },
            },
            RegisterPluginRequest: {
              fields: {
                plugin_name: { type: 'string', id: 1 },
                plugin_idx: { type: 'string', id: 2 },
              },
            },
            Empty: { fields: {} },
            ConfigureRequest: {
              fields: {
                config: { type: 'string', id: 1 },
                runtime_name: { type: 'string', id: 2 },
                runtime_version: { type: 'string', id: 3 },
                registration_timeout: { type: 'int64', id: 4 },
                request_timeout: { type: 'int64', id: 5 },
                nri_version: { type: 'string', id: 6 },
              },
            },
            ConfigureResponse: {
              fields: {
                events: { type: 'int32', id: 2 },
              },
            },
            SynchronizeRequest: {
              fields: {
                pods: { rule: 'repeated', type: 'PodSandbox', id: 1 },
                more: { type: 'bool', id: 3 },
              },
            },
            SynchronizeResponse: {
              fields: {
                more: { type: 'bool', id: 2 },
              },
            },
            StateChangeEvent: {
              fields: {
                event: { type: 'int32', id: 1 },
                pod: { type: 'PodSandbox', id: 2 },
              },
            },
            PodSandboxRequest: {
              fields: {
                pod: { type: 'PodSandbox', id: 1 },
              },
            },
            PodSandbox: {
              fields: {
                id: { type: 'string', id: 1 },
                name: { type: 'string', id: 2 },
                uid: { type: 'string', id: 3 },
                namespace: { type: 'string', id: 4 },
                annotations: { keyType: 'string', type: 'string', id: 6 },
                linux: { type: 'LinuxPodSandbox', id: 8 },
                pid: { type: 'uint32', id: 9 },
                ips: { rule: 'repeated', type: 'string', id: 10 },
              },
            },
            LinuxPodSandbox: {
              fields: {
                namespaces: { rule: 'repeated', type: 'LinuxNamespace', id: 5 },
              },
            },
            LinuxNamespace: {
              fields: {
                type: { type: 'string', id: 1 },
                path: { type: 'string', id: 2 },
              },
            },
          },
        },
      },
    },
  },
};
