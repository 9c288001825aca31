import ArgumentParser
import Foundation
import DistilleryTensor
import DistilleryRecipes

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a recipe without running it: every key, value and path, and that the losses fit the models.")

    @Argument(help: "The recipe (TOML).")
    var recipe: String

    func run() throws {
        let plan = try RecipePlan(try RecipeParser.load(recipe))
        print("\(recipe): OK\n" + plan.summary)
    }
}
