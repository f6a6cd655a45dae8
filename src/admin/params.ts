/**
 * Path-parameter schemas shared by the API's routes. Stream and route names are at most 128
 * characters (SPEC §1); the router's own limit (`maxParamLength` in gateway.ts) is set above
 * every parameter declared here so that every name the spec allows reaches its handler.
 */
export const NAME_MAX_LENGTH = 128;

export function nameParam<K extends string>(key: K) {
  return {
    type: 'object',
    properties: { [key]: { type: 'string', minLength: 1, maxLength: NAME_MAX_LENGTH } },
    required: [key],
  } as const;
}
