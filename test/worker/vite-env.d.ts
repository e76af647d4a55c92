// Vite's `?raw` imports (fixture files as strings) in workerd tests.
declare module "*?raw" {
  const content: string;
  export default content;
}
