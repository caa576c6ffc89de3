// Next.js is not a dependency of this package; these minimal declarations let the example be
// type-checked with the rest of web/. A real app gets the full types from `next`.
declare module "next/navigation" {
  export interface AppRouterInstance {
    push(path: string): void;
  }
  export function useRouter(): AppRouterInstance;
}
