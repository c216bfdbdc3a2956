import type { JwtAlgorithm } from '../security/jwt-provider.js';

/** JSON schema of the YAML configuration file; docs/configuration.md describes each key. */
export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1 },
          host: { type: 'string', minLength: 1 },
          port: { type: 'integer', minimum: 0, maximum: 65535 },
          path: { type: 'string', minLength: 1 },
          allow_anonymous: { type: 'boolean' },
          proxy_protocol: { type: 'boolean' },
          max_connections: { type: 'integer', minimum: 1 },
          trusted_proxies: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          websocket: {
            type: 'object',
            additionalProperties: false,
            properties: {
              path: { type: 'string', pattern: '^/' },
              allowed_origins: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://[^/]+$' } },
              per_message_deflate: { type: 'boolean' },
              forwarded_header: { enum: ['x-forwarded-for', 'forwarded'] },
            },
          },
          tls: {
            type: 'object',
            additionalProperties: false,
            // cert_file and key_file, unless psk_file alone (file-checks.ts says which is missing)
            properties: {
              cert_file: { type: 'string', minLength: 1 },
              key_file: { type: 'string', minLength: 1 },
              key_passphrase_file: { type: 'string', minLength: 1 },
              ca_file: { type: 'string', minLength: 1 },
              crl_file: { type: 'string', minLength: 1 },
              psk_file: { type: 'string', minLength: 1 },
              psk_hint: { type: 'string', minLength: 1, maxLength: 128 },
              min_version: { enum: ['TLSv1.2', 'TLSv1.3'] },
              ciphers: { type: 'string', minLength: 1 },
              request_client_certificate: { type: 'boolean' },
              require_client_certificate: { type: 'boolean' },
            },
          },
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_packet_size: { type: 'integer', minimum: 128, maximum: 268435460 },
        max_connections: { type: 'integer', minimum: 1 },
        max_topic_length: { type: 'integer', minimum: 1, maximum: 65535 },
        max_topic_levels: { type: 'integer', minimum: 1 },
        max_inflight_messages: { type: 'integer', minimum: 1, maximum: 65535 },
        max_queued_messages: { type: 'integer', minimum: 0 },
        max_queued_bytes: { type: 'integer', minimum: 0 },
        max_inflight_bytes: { type: 'integer', minimum: 0 },
        queue_overflow: { enum: ['drop_new', 'drop_oldest'] },
        max_outbound_buffer: { type: 'integer', minimum: 1024 },
        connect_timeout: { type: 'number', exclusiveMinimum: 0 },
        max_retained_messages: { type: 'integer', minimum: 0 },
        max_keepalive: { type: 'integer', minimum: 0, maximum: 65535 },
        memory_high_water: { type: 'integer', minimum: 0 },
        memory_low_water: { type: 'integer', minimum: 0 },
        max_sessions: { type: 'integer', minimum: 0 },
        max_sessions_per_user: { type: 'integer', minimum: 0 },
        max_sessions_per_address: { type: 'integer', minimum: 0 },
        max_session_expiry_anonymous: { type: 'integer', minimum: 0, maximum: 4294967295 },
      },
    },
    capabilities: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maximum_qos: { enum: [0, 1, 2] },
        retain_available: { type: 'boolean' },
        wildcard_subscription_available: { type: 'boolean' },
        subscription_identifiers_available: { type: 'boolean' },
        shared_subscription_available: { type: 'boolean' },
        topic_alias_maximum: { type: 'integer', minimum: 0, maximum: 65535 },
        outgoing_topic_aliases: { type: 'integer', minimum: 0, maximum: 65535 },
        receive_maximum: { type: 'integer', minimum: 1, maximum: 65535 },
        server_keep_alive: { type: 'integer', minimum: 0, maximum: 65535 },
        maximum_session_expiry_interval: { type: 'integer', minimum: 0, maximum: 4294967295 },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      properties: {
        type: { enum: ['sqlite', 'redis', 'memory'] },
        directory: { type: 'string', minLength: 1 },
        url: { type: 'string', pattern: '^rediss?://' },
        sentinel: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'nodes'],
          properties: {
            name: { type: 'string', minLength: 1 },
            nodes: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' } },
          },
        },
        cluster_nodes: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' } },
        wait_replicas: { type: 'integer', minimum: 0, maximum: 16 },
        wait_timeout_ms: { type: 'integer', minimum: 1, maximum: 60000 },
        key_prefix: { type: 'string' },
        durability: { enum: ['strict', 'periodic'] },
        flush_interval_ms: { type: 'integer', minimum: 0, maximum: 60000 },
        encryption: {
          type: 'object',
          additionalProperties: false,
          required: ['key_file'],
          properties: { key_file: { type: 'string', minLength: 1 } },
        },
      },
    },
    authentication: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['type'],
        properties: {
          type: { enum: ['password_file', 'jwt', 'http', 'certificate', 'psk'] },
          // certificate
          username_from: { enum: ['common_name', 'subject'] },
          also_password_file: { type: 'string', minLength: 1 },
          // http
          url: { type: 'string', pattern: '^https?://' },
          timeout_ms: { type: 'integer', minimum: 1, maximum: 60000 },
          cache_ttl_ms: { type: 'integer', minimum: 0 },
          fail_open: { type: 'boolean' },
          // password_file
          path: { type: 'string', minLength: 1 },
          watch: { type: 'boolean' },
          // jwt
          algorithms: { type: 'array', minItems: 1, items: { enum: ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] } },
          secret_file: { type: 'string', minLength: 1 },
          public_key_file: { type: 'string', minLength: 1 },
          jwks_file: { type: 'string', minLength: 1 },
          jwks_url: { type: 'string', pattern: '^https?://' },
          issuer: { type: 'string', minLength: 1 },
          audience: { type: 'string', minLength: 1 },
          username_claim: { type: 'string', minLength: 1 },
          require_username_match: { type: 'boolean' },
          permissions_claim: { type: 'string', minLength: 1 },
          groups_claim: { type: 'string', minLength: 1 },
          disconnect_on_expiry: { type: 'boolean' },
          clock_tolerance: { type: 'integer', minimum: 0, maximum: 3600 },
        },
      },
    },
    authorization: {
      type: 'object',
      additionalProperties: false,
      properties: {
        acl_file: { type: 'string', minLength: 1 },
        http: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: {
            url: { type: 'string', pattern: '^https?://' },
            timeout_ms: { type: 'integer', minimum: 1, maximum: 60000 },
          },
        },
        unauthorized_publish: { enum: ['acknowledge', 'disconnect'] },
        dynamic_security: {
          type: 'object',
          additionalProperties: false,
          required: ['enabled'],
          properties: { enabled: { type: 'boolean' }, admin_role: { type: 'string', minLength: 1 } },
        },
        roles: {
          type: 'object',
          // A role is its list of rules, or the list with the publishing rate limit the role carries.
          additionalProperties: {
            oneOf: [
              { $ref: '#/$defs/rules' },
              {
                type: 'object',
                additionalProperties: false,
                required: ['rules'],
                properties: { rules: { $ref: '#/$defs/rules' }, rate_limit: { $ref: '#/$defs/rate_limit' } },
              },
            ],
          },
        },
        users: { type: 'object', additionalProperties: { $ref: '#/$defs/binding' } },
        groups: { type: 'object', additionalProperties: { $ref: '#/$defs/binding' } },
        anonymous: { $ref: '#/$defs/binding' },
        everyone: { $ref: '#/$defs/binding' },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      properties: {
        file: { type: 'string', minLength: 1 },
      },
    },
    cluster: {
      type: 'object',
      additionalProperties: false,
      required: ['node_id'],
      properties: {
        // Used in Redis key names and in logs: letters, digits, '.', '_' and '-'.
        node_id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
        heartbeat_ms: { type: 'integer', minimum: 100, maximum: 60000 },
        dead_after_ms: { type: 'integer', minimum: 300, maximum: 600000 },
      },
    },
    payload_encryption: {
      type: 'object',
      additionalProperties: false,
      required: ['key_file', 'topics'],
      properties: {
        key_file: { type: 'string', minLength: 1 },
        identity: { enum: ['username', 'client_id'] },
        topics: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
        replay_window: { type: 'integer', minimum: 0, maximum: 1024 },
        reencrypt: { type: 'boolean' },
      },
    },
    guard: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        allow: { type: 'array', items: { type: 'string', minLength: 1 } },
        failures: {
          type: 'object',
          additionalProperties: false,
          properties: {
            max_per_address: { type: 'integer', minimum: 1 },
            max_per_username: { type: 'integer', minimum: 1 },
            max_per_client_id: { type: 'integer', minimum: 1 },
            max_delay: { type: 'number', minimum: 0 },
            window: { type: 'number', exclusiveMinimum: 0 },
          },
        },
        ban: {
          type: 'object',
          additionalProperties: false,
          properties: {
            first: { type: 'number', exclusiveMinimum: 0 },
            max: { type: 'number', exclusiveMinimum: 0 },
            forget_after: { type: 'number', exclusiveMinimum: 0 },
          },
        },
        flapping: {
          type: 'object',
          additionalProperties: false,
          properties: {
            connects: { type: 'integer', minimum: 1 },
            window: { type: 'number', exclusiveMinimum: 0 },
            ban: { type: 'number', exclusiveMinimum: 0 },
          },
        },
        connections: {
          type: 'object',
          additionalProperties: false,
          properties: {
            max_per_address: { type: 'integer', minimum: 1 },
            rate_per_address: { type: 'number', exclusiveMinimum: 0 },
            burst_per_address: { type: 'integer', minimum: 1 },
            rate: { type: 'number', exclusiveMinimum: 0 },
            burst: { type: 'integer', minimum: 1 },
          },
        },
        rate_limit: { $ref: '#/$defs/rate_limit' },
        bans: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: {
              address: { type: 'string', minLength: 1 },
              network: { type: 'string', minLength: 1 },
              client_id: { type: 'string', minLength: 1 },
              username: { type: 'string', minLength: 1 },
              reason: { type: 'string', minLength: 1 },
            },
          },
        },
      },
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['cert_file', 'key_file'],
          properties: {
            cert_file: { type: 'string', minLength: 1 },
            key_file: { type: 'string', minLength: 1 },
            key_passphrase_file: { type: 'string', minLength: 1 },
            min_version: { enum: ['TLSv1.2', 'TLSv1.3'] },
            ciphers: { type: 'string', minLength: 1 },
          },
        },
        metrics_auth: { type: 'boolean' },
        admin_role: { type: 'string', minLength: 1 },
        tokens: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'scopes'],
            properties: {
              name: { type: 'string', minLength: 1 },
              token_file: { type: 'string', minLength: 1 },
              token_sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
              scopes: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['read', 'write', 'metrics'] } },
              expires: { type: 'string', minLength: 1 },
            },
          },
        },
      },
    },
    sys_interval: { type: 'number', minimum: 0 },
    workers: { oneOf: [{ type: 'integer', minimum: 1, maximum: 31 }, { const: 'auto' }] },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
        format: { enum: ['auto', 'json', 'pretty'] },
      },
    },
  },
  $defs: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['topic'],
        properties: {
          topic: { type: 'string', minLength: 1 },
          actions: { type: 'array', minItems: 1, items: { enum: ['publish', 'subscribe'] } },
          effect: { enum: ['allow', 'deny'] },
          max_qos: { enum: [0, 1, 2] },
          retain: { type: 'boolean' },
        },
      },
    },
    rate_limit: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        messages_per_second: { type: 'number', exclusiveMinimum: 0 },
        bytes_per_second: { type: 'integer', minimum: 1 },
        burst: { type: 'number', exclusiveMinimum: 0 },
        action: { enum: ['pause', 'disconnect'] },
      },
    },
    binding: {
      type: 'object',
      additionalProperties: false,
      properties: {
        roles: { type: 'array', items: { type: 'string', minLength: 1 } },
        groups: { type: 'array', items: { type: 'string', minLength: 1 } },
      },
    },
  },
} as const;

export interface FileRule {
  topic: string;
  actions?: Array<'publish' | 'subscribe'>;
  effect?: 'allow' | 'deny';
  max_qos?: 0 | 1 | 2;
  retain?: boolean;
}

export interface FileAuthentication {
  type: 'password_file' | 'jwt' | 'http' | 'certificate' | 'psk';
  username_from?: 'common_name' | 'subject';
  also_password_file?: string;
  url?: string;
  timeout_ms?: number;
  cache_ttl_ms?: number;
  fail_open?: boolean;
  path?: string;
  watch?: boolean;
  algorithms?: JwtAlgorithm[];
  secret_file?: string;
  public_key_file?: string;
  jwks_file?: string;
  jwks_url?: string;
  issuer?: string;
  audience?: string;
  username_claim?: string;
  require_username_match?: boolean;
  permissions_claim?: string;
  groups_claim?: string;
  disconnect_on_expiry?: boolean;
  clock_tolerance?: number;
}

export interface FileBinding {
  roles?: string[];
  groups?: string[];
}

export interface FileWebSocket {
  path?: string;
  allowed_origins?: string[];
  per_message_deflate?: boolean;
  forwarded_header?: 'x-forwarded-for' | 'forwarded';
}

export interface FileTls {
  cert_file?: string;
  key_file?: string;
  key_passphrase_file?: string;
  ca_file?: string;
  crl_file?: string;
  psk_file?: string;
  psk_hint?: string;
  min_version?: 'TLSv1.2' | 'TLSv1.3';
  ciphers?: string;
  request_client_certificate?: boolean;
  require_client_certificate?: boolean;
}

export interface FileConfig {
  listeners?: Array<{
    name?: string; host?: string; port?: number; path?: string; allow_anonymous?: boolean; tls?: FileTls; websocket?: FileWebSocket;
    proxy_protocol?: boolean; trusted_proxies?: string[]; max_connections?: number;
  }>;
  limits?: {
    max_packet_size?: number;
    max_connections?: number;
    max_topic_length?: number;
    max_topic_levels?: number;
    max_inflight_messages?: number;
    max_queued_messages?: number;
    max_queued_bytes?: number;
    max_inflight_bytes?: number;
    queue_overflow?: 'drop_new' | 'drop_oldest';
    max_outbound_buffer?: number;
    connect_timeout?: number;
    max_retained_messages?: number;
    max_keepalive?: number;
    memory_high_water?: number;
    memory_low_water?: number;
    max_sessions?: number;
    max_sessions_per_user?: number;
    max_sessions_per_address?: number;
    max_session_expiry_anonymous?: number;
  };
  capabilities?: {
    maximum_qos?: 0 | 1 | 2;
    retain_available?: boolean;
    wildcard_subscription_available?: boolean;
    subscription_identifiers_available?: boolean;
    shared_subscription_available?: boolean;
    topic_alias_maximum?: number;
    outgoing_topic_aliases?: number;
    receive_maximum?: number;
    server_keep_alive?: number;
    maximum_session_expiry_interval?: number;
  };
  store?: {
    type?: 'sqlite' | 'redis' | 'memory';
    directory?: string;
    url?: string;
    sentinel?: { name: string; nodes: string[] };
    cluster_nodes?: string[];
    wait_replicas?: number;
    wait_timeout_ms?: number;
    key_prefix?: string;
    durability?: 'strict' | 'periodic';
    flush_interval_ms?: number;
    encryption?: { key_file: string };
  };
  authentication?: FileAuthentication[];
  authorization?: {
    acl_file?: string;
    http?: { url: string; timeout_ms?: number };
    unauthorized_publish?: 'acknowledge' | 'disconnect';
    dynamic_security?: { enabled: boolean; admin_role?: string };
    roles?: Record<string, FileRule[] | { rules: FileRule[]; rate_limit?: FileRateLimit }>;
    users?: Record<string, FileBinding>;
    groups?: Record<string, FileBinding>;
    anonymous?: FileBinding;
    everyone?: FileBinding;
  };
  audit?: { file?: string };
  guard?: FileGuard;
  admin?: FileAdmin;
  cluster?: { node_id: string; heartbeat_ms?: number; dead_after_ms?: number };
  payload_encryption?: { key_file: string; identity?: 'username' | 'client_id'; topics: string[]; replay_window?: number; reencrypt?: boolean };
  sys_interval?: number;
  workers?: number | 'auto';
  log?: { level?: string; format?: 'auto' | 'json' | 'pretty' };
}

export interface FileRateLimit {
  messages_per_second?: number;
  bytes_per_second?: number;
  burst?: number;
  action?: 'pause' | 'disconnect';
}

export interface FileGuard {
  enabled?: boolean;
  allow?: string[];
  failures?: { max_per_address?: number; max_per_username?: number; max_per_client_id?: number; max_delay?: number; window?: number };
  ban?: { first?: number; max?: number; forget_after?: number };
  flapping?: { connects?: number; window?: number; ban?: number };
  connections?: { max_per_address?: number; rate_per_address?: number; burst_per_address?: number; rate?: number; burst?: number };
  bans?: Array<{ address?: string; network?: string; client_id?: string; username?: string; reason?: string }>;
  rate_limit?: FileRateLimit;
}

export interface FileAdmin {
  host?: string;
  port?: number;
  tls?: { cert_file: string; key_file: string; key_passphrase_file?: string; min_version?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string };
  metrics_auth?: boolean;
  admin_role?: string;
  tokens?: Array<{ name: string; token_file?: string; token_sha256?: string; scopes: Array<'read' | 'write' | 'metrics'>; expires?: string }>;
}
